"""Reading a returned message whatever state it is in: bytes to a Message, headers and text that
never raise, RFC 822-style field blocks (DSN and ARF), and the returned original, whose Message-ID
and X-Loft-Token header match the bounce to its Send."""
import re
from email import policy
from email.parser import BytesParser
from email.parser import HeaderParser

MAX_BYTES = 4 * 1024 * 1024  # only the first 4 MB are read: bounces carry the original, not mailing lists
TOKEN_HEADER = "X-Loft-Token"

ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)


# Lines that start the copy of the original message in a text bounce.
ORIGINAL_MARKERS = re.compile(
    r"^[ \t>]*(?:"
    r"-+ ?(?:this is a copy of|below this line is a copy|original message|the original message|unsent message|"
    r"returned (?:mail|message)|copy of (?:the|your) message|message header|headers? of|original mail|"
    r"the header of|(?:rfc ?822 |returned )?message (?:headers? )?follows|[^\n]*message header follows|"
    r"partial message)"
    r"|--- ?below this line is a copy"
    r"|(?:original|returned) message (?:headers? )?follows"
    r"|-+ ?(?:original|returned|undelivered|undeliverable) (?:message|mail|e-?mail)"
    r"|\*+ ?original message"
    r"|content-type: (?:message/rfc822|text/rfc822-headers)"
    r"|the (?:original )?message headers? follows?"
    r"|message headers? follows?"
    r"|below is a copy of (?:the|your) (?:original )?message"
    r"|(?:original|returned) (?:message|mail) (?:headers? )?:?$"
    r")", re.I | re.M)


# --- Loading ----------------------------------------------------------------------

def load(raw):
    """A Message from bytes: policy.default, or compat32 when that chokes."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    raw = raw[:MAX_BYTES]
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return BytesParser(policy=policy.default).parsebytes(raw)
    except Exception:  # noqa: BLE001 - hostile input: fall back to the forgiving parser
        return BytesParser(policy=policy.compat32).parsebytes(raw)


def header(msg, name, default=""):
    """A header as text; never raises (a malformed header gives its raw value)."""
    try:
        value = msg.get(name)
        if value is not None:
            value = str(value).strip()
            if "\x1b$" in value:  # raw ISO-2022-JP, not MIME-encoded (older Japanese MTAs)
                value = value.encode("latin-1", "replace").decode("iso-2022-jp", "replace")
            return value
    except Exception:  # noqa: BLE001
        pass
    try:
        for key, value in msg.raw_items():
            if key.lower() == name.lower():
                return unfold(str(value))
    except Exception:  # noqa: BLE001
        pass
    return default


def unfold(value):
    return re.sub(r"\r?\n[ \t]+", " ", value or "").strip()


def content_type(part):
    try:
        return part.get_content_type()
    except Exception:  # noqa: BLE001
        return "text/plain"


def text_of(part):
    """The decoded text of a leaf part, whatever its charset or transfer encoding claims."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        payload = None
    if payload is None:
        payload = part.get_payload()
        if isinstance(payload, list):
            return "\n\n".join(serialise(p) for p in payload)
        return payload if isinstance(payload, str) else ""
    charset = None
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        pass
    return decode_bytes(payload, charset)


def decode_bytes(payload, charset=None):
    if (b"\x1b$B" in payload or b"\x1b$@" in payload) and \
            (not charset or charset.lower() in ("us-ascii", "ascii", "utf-8", "iso-8859-1")):
        charset = "iso-2022-jp"  # 7-bit Japanese (au, docomo ...) that does not declare its charset
    for candidate in (charset, "utf-8", "iso-2022-jp", "cp1252"):
        if not candidate:
            continue
        try:
            return payload.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return payload.decode("latin-1")


def undo_surrogates(text):
    """The parser keeps undecodable 8-bit bytes as surrogates; read them as UTF-8 (RFC 6532/6533)."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def serialise(msg):
    """Header block (and body) of a sub-message as text, without re-folding or policy surprises."""
    lines = []
    try:
        for key, value in msg.raw_items():
            lines.append(f"{key}: {undo_surrogates(str(value))}")
    except Exception:  # noqa: BLE001
        pass
    body = ""
    try:
        payload = msg.get_payload()
        if isinstance(payload, str):
            data = msg.get_payload(decode=True)  # the original bytes (get_payload() turns 8-bit into U+FFFD)
            body = decode_bytes(data) if isinstance(data, bytes) else undo_surrogates(payload)
        elif isinstance(payload, list):
            body = "\n\n".join(serialise(p) for p in payload)
    except Exception:  # noqa: BLE001
        pass
    return "\n".join(lines) + ("\n\n" + body if body.strip() else "")


def walk(msg, depth=0):
    """Leaf and message parts of the report, not descending into the returned original."""
    if depth > 8:
        return
    ctype = content_type(msg)
    if ctype.startswith("multipart/") and not msg.is_multipart():
        yield ("text/plain", msg)  # a multipart without its boundaries: read it as text
        return
    if msg.is_multipart() and ctype.startswith("multipart/"):
        try:
            parts = msg.get_payload()
        except Exception:  # noqa: BLE001
            parts = []
        for part in parts if isinstance(parts, list) else []:
            yield from walk(part, depth + 1)
        return
    yield (ctype, msg)


# --- Field blocks (DSN and ARF) -------------------------------------------------------

def field_blocks(text):
    """RFC 822-style "Name: value" blocks separated by blank lines -> [[(name, value)], ...]."""
    blocks, current = [], []
    last = None
    for line in (text or "").replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = [], None
            continue
        if line[:1] in (" ", "\t") and last is not None:
            name, value = current[last]
            current[last] = (name, value + " " + line.strip())
            continue
        match = re.match(r"^([A-Za-z][\w-]*)\s*:\s?(.*)$", line)
        if match:
            current.append((match.group(1), match.group(2).strip()))
            last = len(current) - 1
        elif last is not None:  # an unindented continuation, seen in sloppy reports
            name, value = current[last]
            current[last] = (name, value + " " + line.strip())
    if current:
        blocks.append(current)
    return blocks


def get_field(block, name):
    name = name.lower()
    for key, value in block:
        if key.lower() == name:
            return value
    return ""


def typed_value(value):
    """'rfc822; a@b' -> ('rfc822', 'a@b')."""
    if ";" in value:
        kind, _, rest = value.partition(";")
        if re.fullmatch(r"[\w.-]+", kind.strip()):
            return kind.strip(), rest.strip()
    return "", value.strip()


def clean_address(value):
    value = (value or "").strip().strip("<>").strip()
    match = ADDRESS.search(value)
    return match.group(0).lower().rstrip(".") if match else ""


# --- The returned original --------------------------------------------------------------

def original_from_text(text):
    """Headers of an original message found in `text` (from its first header line)."""
    text = (text or "").replace("\r\n", "\n").lstrip("\n")
    lines = text.split("\n")
    start = None
    for index, line in enumerate(lines[:80]):
        if re.match(r"^[ \t>]*(?:Return-Path|Received|From|To|Message-ID|Date|Subject|MIME-Version|"
                    r"X-[\w-]+|Content-Type|DKIM-Signature|Delivered-To|Reply-To)\s*:", line, re.I):
            start = index
            break
    if start is None:
        return None
    block = "\n".join(line.lstrip(" >") if re.match(r"^[ >]+[\w-]+:", line) else line
                      for line in lines[start:start + 400])
    try:
        return HeaderParser(policy=policy.compat32).parsestr(block, headersonly=True)
    except Exception:  # noqa: BLE001
        return None


def find_token(text):
    match = re.search(rf"^[ \t>]*{TOKEN_HEADER}:[ \t]*([A-Za-z0-9_-]{{8,120}})", text or "", re.I | re.M)
    return match.group(1) if match else ""


def find_message_id(text):
    match = re.search(r"^[ \t>]*Message-ID:[ \t]*\r?\n?[ \t]*(<[^>\s]+>)", text or "", re.I | re.M)
    return match.group(1) if match else ""


def fill_original(report, original, fallback_text=""):
    if original is not None:
        report.original_message_id = report.original_message_id or header(original, "Message-ID")
        report.loft_token = report.loft_token or header(original, TOKEN_HEADER)
        to = header(original, "To")
        report.original_to = report.original_to or (clean_address(to) if to else "")
    if not report.loft_token:
        report.loft_token = find_token(fallback_text)
    if not report.original_message_id:
        report.original_message_id = find_message_id(fallback_text)
    token = re.match(r"[A-Za-z0-9_-]+", report.loft_token or "")
    report.loft_token = token.group(0) if token else ""
    mid = re.search(r"<[^>\s]+>", report.original_message_id or "")
    report.original_message_id = mid.group(0) if mid else (report.original_message_id or "").strip()


def original_message(parts):
    """The returned original (its headers at least) from message/rfc822 or text/rfc822-headers parts."""
    for part in parts:
        try:
            payload = part.get_payload()
        except Exception:  # noqa: BLE001
            continue
        if isinstance(payload, list) and payload:
            return payload[0]
        found = original_from_text(text_of(part))
        if found is not None:
            return found
    return None


def original_text(prose, raw_text):
    """Where to look for the original's headers by pattern: the raw message minus its own header block."""
    _, _, body = raw_text.replace("\r\n", "\n").partition("\n\n")
    return body or prose


def cut_original(text):
    """The bounce prose without the copy of the returned message."""
    match = ORIGINAL_MARKERS.search(text or "")
    if match:
        return text[:match.start()]
    # No marker: stop at the first header block that looks like the original's.
    match = re.search(r"^(?:Return-Path|Received|Message-ID|DKIM-Signature):", text or "", re.I | re.M)
    if match and match.start() > 0:
        return text[:match.start()]
    return text or ""
