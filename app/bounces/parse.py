"""Read one returned message: a delivery status notification, a non-standard
bounce, an ARF complaint, an auto-reply, or none of these.

parse_message(raw_bytes) -> Report. It never raises for bad input: a broken
message gives a Report with is_bounce False and reason "unparseable".

Formats understood:
  * RFC 3464 DSNs (multipart/report; report-type=delivery-status, also the
    RFC 6533 message/global-delivery-status and mislabelled containers);
  * ARF feedback reports (RFC 5965 message/feedback-report, including DMARC
    failure reports, RFC 6591) and Amazon SES notifications mailed as JSON;
  * the prose of MTAs that send no DSN (qmail, Exim, old Postfix and
    Sendmail, Exchange/Notes, Yahoo, Japanese carriers ...): recipients and
    the server's words are found in the text before the returned message;
  * RFC 3834 auto-replies (Auto-Submitted, X-Autoreply, out-of-office
    subjects), reported as is_auto_reply, never as bounces.

The returned original (message/rfc822, text/rfc822-headers, or the copy
after the "below this line" marker of a text bounce) gives the Message-ID
and the X-Loft-Token header used to match the bounce to the Send.
"""
import dataclasses
import json
import logging
import re
from email import policy
from email.parser import BytesParser
from email.parser import HeaderParser

from app.bounces import classify
from app.content.text import html_to_text

log = logging.getLogger(__name__)

MAX_BYTES = 4 * 1024 * 1024  # only the first 4 MB are read: bounces carry the original, not mailing lists
TOKEN_HEADER = "X-Loft-Token"

DSN_TYPES = ("message/delivery-status", "message/global-delivery-status", "text/delivery-status",
             "message/delivery-status-notification")
ORIGINAL_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers", "message/rfc822-headers",
                  "message/global-headers", "text/rfc822")
ARF_TYPES = ("message/feedback-report",)

ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
SYSTEM_LOCALS = ("mailer-daemon", "postmaster", "root", "daemon", "nobody", "bounce", "bounces", "noreply",
                 "no-reply", "abuse", "double-bounce", "mail-daemon", "maildaemon", "administrator")

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

AUTO_REPLY_SUBJECT = re.compile(
    r"^(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|out of (?:the )?office|ooo\b|away from|vacation|"
    r"abwesenheit|absence|réponse automatique|respuesta automática|自動応答|autoreply|auto:)", re.I)
BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (?:status notification|failure|has failed|failed|problem|report|notification)|"
    r"returned mail|mail delivery (?:failed|failure|system|subsystem)|failure notice|delivery failure|"
    r"could not (?:be )?deliver|non[- ]?delivery|nondeliverable|mail system error|returned to sender|"
    r"message not delivered|warning: could not send|delivery notification|rejected|bounce|error sending|"
    r"message you sent|mail could not|failed delivery|fehlgeschlagen|unzustellbar|non remis|non recapitabile|"
    r"error|failure|problem|returned|delivery|"
    # Japanese carriers and MTAs (au, docomo, SoftBank, Biglobe, m-FILTER ...) often say it only in Japanese
    r"配信(?:エラー|失敗|不能|できません)|不達|送信(?:エラー|失敗)|返送|エラーメール|届きません|配送(?:エラー|失敗)|"
    r"未配達|宛先不明|宛先エラー", re.I)
BOUNCE_SENDER = re.compile(
    r"mailer[-_ ]?daemon|post_?master|mail ?delivery|mail ?administrator|maildelivery|mailerdaemon|bounce|"
    r"mail ?system|mdaemon|root@|mail ?router|microsoftexchange|notification|mailmaster|smtp|bounces",
    re.I)
BODY_BOUNCE_HINT = re.compile(
    r"could not be delivered|couldn't be delivered|was not delivered|undeliverable|delivery (?:has )?failed|"
    r"permanent (?:error|fatal|failure)|fatal errors?|unable to deliver|failed to deliver|delivery to the following|"
    r"following (?:address|recipient)|not be delivered|wasn't able to deliver|could not deliver|delivery failure|"
    r"returned to (?:the )?sender|message delivery failed|mail delivery failed|rejected|user unknown|does not exist|"
    r"was blocked|error occurred|delivery problem|bounce|smtp error|remote host said|status: ?[45]\.|"
    r"invalid (?:user|recipient|address)|no such (?:user|mailbox)|requested action not taken|mailbox (?:is )?full|"
    r"(?:recipients?|address) (?:was|were|has been) rejected|account is disabled|did not reach|"
    r"cannot be delivered|could not be sent|unknown user|no longer (?:valid|available)|"
    r"配信|届きませんでした|宛先|送信できませんでした|エラー|存在しません|受信拒否|届けられません|送れませんでした",
    re.I)


@dataclasses.dataclass
class Recipient:
    """What the bounce says about one recipient."""
    email: str
    action: str = "failed"
    status: str = ""
    diagnostic: str = ""
    diagnostic_type: str = ""
    remote_mta: str = ""
    command: str = ""
    kind: str = "none"
    reason: str = ""
    hard: bool = False

    def as_json(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Report:
    is_bounce: bool = False
    is_complaint: bool = False
    is_auto_reply: bool = False
    hard: bool = False
    kind: str = "none"
    reason: str = ""
    status: str = ""
    recipients: list = dataclasses.field(default_factory=list)
    diagnostic: str = ""
    remote_mta: str = ""
    reporting_mta: str = ""
    original_message_id: str = ""
    original_to: str = ""
    loft_token: str = ""
    feedback_type: str = ""
    source_ip: str = ""
    format: str = "none"  # dsn, text, arf, ses, mailto (an unsubscribe request), auto-reply, webhook, none
    message_id: str = ""  # the report's own Message-ID (for deduplication)
    unsubscribe_token: str = ""  # from the subject of a List-Unsubscribe mailto request
    subject: str = ""
    results: list = dataclasses.field(default_factory=list)  # [Recipient], one per recipient

    def as_json(self):
        data = {
            "is_bounce": self.is_bounce, "hard": self.hard, "reason": self.reason, "recipients": self.recipients,
            "status": self.status, "kind": self.kind, "is_complaint": self.is_complaint,
            "is_auto_reply": self.is_auto_reply, "diagnostic": self.diagnostic, "remote_mta": self.remote_mta,
            "reporting_mta": self.reporting_mta, "original_message_id": self.original_message_id,
            "original_to": self.original_to, "loft_token": self.loft_token, "feedback_type": self.feedback_type,
            "source_ip": self.source_ip, "format": self.format, "message_id": self.message_id,
            "subject": self.subject, "unsubscribe_token": self.unsubscribe_token,
            "results": [r.as_json() for r in self.results],
        }
        return data

    def summarise(self):
        """Fill the top-level fields from the per-recipient results (the first one speaks for the report)."""
        self.recipients = [r.email for r in self.results]
        failed = [r for r in self.results if r.kind != "none"]
        if self.is_complaint or self.format == "arf":
            return self
        self.is_bounce = bool(failed)
        first = failed[0] if failed else (self.results[0] if self.results else None)
        if first is not None:
            self.kind, self.reason, self.status, self.hard = first.kind, first.reason, first.status, first.hard
            self.diagnostic, self.remote_mta = first.diagnostic, first.remote_mta
        return self


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


# --- Parsing -------------------------------------------------------------------------------

def parse_message(raw):
    """A Report for one message (bytes). Never raises."""
    try:
        return _parse(raw)
    except Exception:  # noqa: BLE001 - a hostile or broken message must never stop the intake
        log.exception("bounce parse failed")
        return Report(reason="unparseable")


def _parse(raw, depth=0):
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    msg = load(raw)
    report = Report(message_id=header(msg, "Message-ID"), subject=header(msg, "Subject"))
    raw_text = raw[:MAX_BYTES].decode("utf-8", "replace")
    parts = list(walk(msg))
    dsn_parts, arf_parts, originals, texts = [], [], [], []
    for ctype, part in parts:
        if ctype in DSN_TYPES:
            dsn_parts.append(part)
        elif ctype in ARF_TYPES:
            arf_parts.append(part)
        elif ctype in ORIGINAL_TYPES:
            originals.append(part)
        elif ctype.startswith("text/") or ctype == "message/partial":
            texts.append((ctype, part))
    original = original_message(originals)
    report_type = ""
    try:
        report_type = (msg.get_param("report-type") or "").lower() if content_type(msg) == "multipart/report" else ""
    except Exception:  # noqa: BLE001
        pass

    if arf_parts or report_type == "feedback-report":
        return parse_arf(report, msg, arf_parts, original, texts, raw_text)
    if is_unsubscribe_request(msg, report.subject):
        return parse_unsubscribe_request(report, msg)

    body_texts = [(ctype, text_of(part)) for ctype, part in texts]
    prose = "\n\n".join(html_to_text(t) if c == "text/html" else t for c, t in body_texts)

    ses = parse_ses(report, prose, msg)
    if ses is not None:
        fill_original(ses, original, raw_text)
        return ses

    dsn_texts = [text_of(part) for part in dsn_parts]
    if not dsn_texts and re.search(r"^Final-Recipient:", prose, re.I | re.M):
        dsn_texts = [prose[re.search(r"^(?:Reporting-MTA|Final-Recipient):", prose, re.I | re.M).start():]]
    if dsn_texts:
        parse_dsn(report, dsn_texts, prose)
        if report.results:
            report.format = "dsn"
            fill_original(report, original, original_text(prose, raw_text))
            classify_results(report, prose, msg)
            return report.summarise()

    nested = nested_bounce(originals, depth)
    if nested is not None:
        return nested

    if is_auto_reply(msg, report.subject) and not looks_like_bounce(msg, report.subject, prose):
        report.is_auto_reply = True
        report.format = "auto-reply"
        report.reason = "vacation"
        fill_original(report, original, "")
        return report

    if looks_like_bounce(msg, report.subject, prose) or dsn_parts:
        parse_text(report, msg, prose, original)
        report.format = "text"
        fill_original(report, original, original_text(prose, raw_text))
        classify_results(report, prose, msg)
        return report.summarise()

    report.reason = "not_bounce"
    return report


def nested_bounce(originals, depth):
    """A bounce forwarded as an attachment (a relay returning the DSN it got): parse the attached one."""
    if depth >= 2:
        return None
    for part in originals:
        try:
            payload = part.get_payload()
        except Exception:  # noqa: BLE001
            continue
        inner = payload[0] if isinstance(payload, list) and payload else None
        if inner is None or content_type(inner) != "multipart/report":
            continue
        try:
            raw = inner.as_bytes(policy=policy.compat32)
        except Exception:  # noqa: BLE001
            continue
        found = _parse(raw, depth + 1)
        if found.is_bounce:
            return found
    return None


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


# --- RFC 3464 ----------------------------------------------------------------------------------

def parse_dsn(report, dsn_texts, prose):
    for text in dsn_texts:
        blocks = field_blocks(text)
        if not blocks:
            continue
        per_message = blocks[0] if not get_field(blocks[0], "Final-Recipient") else []
        if per_message:
            report.reporting_mta = typed_value(get_field(per_message, "Reporting-MTA"))[1]
        for block in blocks:
            final = get_field(block, "Final-Recipient") or get_field(block, "Original-Recipient") \
                or get_field(block, "X-Actual-Recipient")
            address = clean_address(typed_value(final)[1]) if final else ""
            if not address:
                continue
            diagnostic_type, diagnostic = typed_value(get_field(block, "Diagnostic-Code"))
            recipient = Recipient(
                email=address,
                action=(get_field(block, "Action") or "failed").split()[0].lower().strip(";,"),
                status=(classify.find_status(get_field(block, "Status")) or [get_field(block, "Status").strip()])[0],
                diagnostic=unfold(diagnostic),
                diagnostic_type=diagnostic_type.upper(),
                remote_mta=typed_value(get_field(block, "Remote-MTA"))[1],
            )
            existing = next((r for r in report.results if r.email == address), None)
            if existing is not None:  # the same recipient twice (Original- and Final-): keep the richer one
                if not existing.diagnostic and recipient.diagnostic:
                    existing.diagnostic = recipient.diagnostic
                continue
            report.results.append(recipient)
    # Diagnostic missing in the DSN, or only the first line of a multi-line reply ("550-5.7.1 ..."
    # as Sendmail writes it): take this recipient's lines from the human-readable part.
    for recipient in report.results:
        nearby = cut_original(prose) if len(report.results) == 1 else prose_about(prose, recipient.email)
        if not recipient.diagnostic or len(recipient.diagnostic) < 12:
            extra = prose_about(prose, recipient.email)
            if extra:
                recipient.diagnostic = (recipient.diagnostic + " " + extra).strip()
        elif re.match(r"^[45]\d\d-", recipient.diagnostic) and nearby:
            recipient.diagnostic = (recipient.diagnostic + " " + unfold(nearby)[:1500]).strip()
        recipient.command = recipient.command or smtp_command(recipient.diagnostic + "\n" + nearby)


def prose_about(prose, address, width=600):
    """The words following `address` in the human-readable text, up to the next address."""
    text = cut_original(prose or "")
    lower = text.lower()
    at = lower.find(address.lower())
    if at < 0:
        return ""
    rest = text[at + len(address):at + len(address) + width]
    for following in ADDRESS.finditer(rest):
        if following.group(0).lower().rstrip(".") != address.lower():
            rest = rest[:following.start()]
            break
    return unfold(rest).strip(" :>-\n")


COMMAND_PHRASES = (
    (r"IN REPLY TO (RCPT|DATA|MAIL|END OF DATA|EHLO|HELO)\b", None),
    (r"AFTER (?:PIPELINED )?(RCPT|DATA|MAIL|END OF DATA|EHLO|HELO)\b", None),
    # qmail: "... does not like recipient." / "... does not like sender." / "Connected to ... but sender was rejected."
    (r"DOES NOT LIKE RECIPIENT", "RCPT"),
    (r"DOES NOT LIKE SENDER|BUT SENDER WAS REJECTED", "MAIL"),
    (r"FAILED ON DATA COMMAND|FAILED AFTER I SENT THE MESSAGE", "DATA"),
    (r"\b(RCPT|DATA|MAIL) (?:TO |FROM )?COMMAND\b", None),
    (r"SMTP:(RCPT|DATA|MAIL)\b", None),
    (r"\[(RCPT_TO|MAIL_FROM|DATA)\]", None),
    (r"MOST PROGRESS WAS (RCPT|DATA|MAIL)", None),
    (r"(?:DID NOT|DIDN'T) LIKE (?:OUR )?(RCPT|DATA|MAIL)", None),
    (r"\bRCPT:\s*<", "RCPT"),
    (r"-+SMTP COMMAND\s+(RCPT|DATA|MAIL)", None),
    # Oracle/Sun Messaging Server: "Reason: Remote SMTP server has rejected address" (refused at RCPT)
    (r"SERVER HAS REJECTED (?:THE )?ADDRESS", "RCPT"),
)


def smtp_command(text):
    """The SMTP command a failure answered (RCPT, DATA, MAIL, HELO), when the bounce says so."""
    text = (text or "").upper()
    transcript = re.findall(r"^\s*>>>\s*(RCPT|DATA|MAIL|EHLO|HELO)\b", text, re.M)
    if transcript:
        return _command(transcript[-1])
    hits = []
    for pattern, fixed in COMMAND_PHRASES:
        match = re.search(pattern, text)
        if match:
            hits.append((match.start(), fixed or match.group(1)))
    if hits:
        return _command(min(hits)[1])
    return ""


def _command(word):
    word = word.replace("_", " ")
    if word.startswith("RCPT"):
        return "RCPT"
    if word.startswith("MAIL"):
        return "MAIL"
    if "DATA" in word:
        return "DATA"
    return "HELO"


# --- Non-standard bounces ----------------------------------------------------------------------------

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


def looks_like_bounce(msg, subject, prose):
    sender = header(msg, "From")
    if header(msg, "X-Failed-Recipients"):
        return True
    if BOUNCE_SENDER.search(sender) and (BOUNCE_SUBJECT.search(subject) or BODY_BOUNCE_HINT.search(prose[:5000])):
        return True
    if header(msg, "Return-Path").strip() == "<>" and BODY_BOUNCE_HINT.search(prose[:5000]):
        return True  # the null envelope sender is reserved for delivery notifications
    if re.search(r"undeliver|delivery (?:status|failure|failed|notification)|returned mail|failure notice|"
                 r"mail delivery|non[- ]?deliver|could not be delivered", subject, re.I) \
            and BODY_BOUNCE_HINT.search(prose[:8000]):
        return True
    # Japanese carriers' own formats carry no DSN, often no null Return-Path, and may have a
    # Japanese subject: recognise them by their sender and their fixed sentences.
    head = prose[:5000]
    if CARRIER_FORMAT.search(head) and re.search(r"could not be delivered to:\s*<|recipient: <|^\s*<[^>\s]+@",
                                                 head, re.I | re.M):
        return True
    senders = sender + " " + header(msg, "Reply-To") + " " + header(msg, "Message-ID")
    if CARRIER_SENDER.search(senders) and (CARRIER_FORMAT.search(head) or BODY_BOUNCE_HINT.search(head)):
        return True
    return False


# au/KDDI: "Your mail sent on: <date> / Could not be delivered to: <address> / As their mailbox is full."
# EZweb: "The user(s) account is disabled." / "Each of the following recipients was rejected by a remote
# mail server." (from Postmaster@ezweb.ne.jp or Postmaster@au.com, Message-ID @...ezweb.ne.jp).
CARRIER_FORMAT = re.compile(
    r"your mail (?:sent|attempted to be delivered) on:|could not be delivered to:\s*<|the user\(s\) account is|"
    r"each of the following recipients was rejected|your message was not delivered within", re.I)
CARRIER_SENDER = re.compile(
    r"postmaster@(?:[\w-]+\.)*(?:ezweb\.ne\.jp|au\.com)|[.@](?:[\w-]+\.)*dion\.ne\.jp|auone-net\.jp|"
    r"no-reply@\.|[.@]ezweb\.ne\.jp>|\.au\.com>", re.I)


def is_auto_reply(msg, subject):
    auto = header(msg, "Auto-Submitted").lower()
    if auto.startswith("auto-replied"):
        return True
    if header(msg, "X-Autoreply") or header(msg, "X-Autorespond"):
        return True
    if header(msg, "Precedence").lower() == "auto_reply":
        return True
    return bool(AUTO_REPLY_SUBJECT.search(subject or ""))


def parse_text(report, msg, prose, original):
    body = cut_original(prose)
    ignore = set()
    for name in ("From", "To", "Reply-To", "Sender", "Return-Path", "Delivered-To", "Cc"):
        for address in ADDRESS.findall(header(msg, name)):
            ignore.add(address.lower())
    sender_of_original = clean_address(header(original, "From")) if original is not None else ""
    if sender_of_original:
        ignore.add(sender_of_original)
    candidates = []
    failed_header = header(msg, "X-Failed-Recipients")
    for address in ADDRESS.findall(failed_header):
        if address.lower() not in candidates:
            candidates.append(address.lower())
    if not candidates:
        for match in ADDRESS.finditer(body):
            address = match.group(0).lower().rstrip(".")
            local = address.split("@")[0]
            if address in ignore or local in SYSTEM_LOCALS or address in candidates:
                continue
            if is_message_id(body, match):
                continue
            candidates.append(address)
    candidates = strongest(body, candidates)
    if not candidates and original is not None:
        to = clean_address(header(original, "To"))
        if to:
            candidates.append(to)
    if not candidates:
        # A bounce for someone we cannot name: still a bounce, matched by token or Message-ID.
        candidates.append("")
    segments = split_by_address(body, [c for c in candidates if c])
    for address in candidates:
        words = segments.get(address, "") if address else body
        report.results.append(Recipient(email=address, diagnostic=unfold(words)[:2000],
                                        command=smtp_command(words), remote_mta=remote_host(words)))


def strongest(body, candidates):
    """Keep the addresses a bounce lists as failed recipients, over ones it merely mentions.

    Strong: an address starting its line ("<a@b>:", "a@b on ...", Exim's indented list).
    Weak: one only seen after a header-like label ("To: a@b" in Exchange's summary of
    the original) or next to "contact". With any strong address, the weak and plain
    ones go; otherwise the weak ones go when others remain.
    """
    if len(candidates) < 2:
        return candidates
    strength = {}
    for address in candidates:
        best = None
        for line in body.splitlines():
            at = line.lower().find(address)
            if at < 0:
                continue
            head = line[:at]
            if re.match(r"^\s*(?:to|from|cc|bcc|subject|sent|reply-to|date|sender)\s*:", head, re.I) or \
                    re.search(r"contact|\bmail to\b|\bwrite to\b", head, re.I):
                level = 0
            elif re.fullmatch(r"[\s<\"'(>*-]*", head):
                level = 2
            else:
                level = 1
            best = level if best is None else max(best, level)
        strength[address] = 1 if best is None else best
    top = max(strength.values())
    return [a for a in candidates if strength[a] == top] if top > 0 else candidates


def is_message_id(text, match):
    before = text[max(0, match.start() - 1):match.start()]
    after = text[match.end():match.end() + 1]
    line_start = text.rfind("\n", 0, match.start()) + 1
    line = text[line_start:match.start()].lower()
    return (before == "<" and after == ">" and ("message-id" in line or "id:" in line)) or "message-id" in line


def split_by_address(text, addresses):
    """{address: the text after each mention of it, up to the next mention of another address}."""
    if not addresses:
        return {}
    pattern = re.compile("|".join(re.escape(a) for a in sorted(addresses, key=len, reverse=True)), re.I)
    hits = list(pattern.finditer(text))
    out = {a: "" for a in addresses}
    # Text before the first mention (the intro) counts for the first address only when it is the only one.
    for index, hit in enumerate(hits):
        address = hit.group(0).lower()
        end = len(text)
        for later in hits[index + 1:]:
            if later.group(0).lower() != address:
                end = later.start()
                break
        segment = text[hit.end():end]
        if segment.strip() and segment not in out[address]:
            out[address] += " " + segment
    if len(addresses) == 1:
        address = addresses[0]
        out[address] = text if not out[address].strip() else (out[address] + " " + text[:hits[0].start()]
                                                                if hits else text)
    return out


def remote_host(text):
    match = re.search(r"(?:host|server|mx)\s+([\w.-]+\.[a-z]{2,})\s*(?:\[[\d.:a-f]+\])?\s*(?:said|says|:)",
                      text or "", re.I)
    return match.group(1) if match else ""


# --- Classification of the results -----------------------------------------------------------------

def classify_results(report, prose, msg=None):
    context = cut_original(prose)
    # au/EZweb mark a message refused by the recipient's own filter with "X-SPASIGN: NG".
    refused_by_filter = msg is not None and header(msg, "X-SPASIGN").strip().upper() == "NG"
    for recipient in report.results:
        kind, reason, status = classify.classify(recipient.status, recipient.diagnostic, action=recipient.action,
                                                 command=recipient.command, context=context,
                                                 diagnostic_type=recipient.diagnostic_type,
                                                 recipient=recipient.email,
                                                 remote_mta=f"{recipient.remote_mta} {report.reporting_mta}".strip())
        if recipient.action == "delayed" and kind != "none":
            reason = "expired" if reason in ("onhold", "undefined", "systemerror", "networkerror") else reason
        if refused_by_filter and kind != "none":
            kind, reason = classify.kind_of("filtered"), "filtered"
        recipient.kind, recipient.reason, recipient.status = kind, reason, status or recipient.status
        recipient.hard = kind == "hard"


# --- Amazon SES notifications (JSON in a mail) ---------------------------------------------------------

def parse_ses(report, prose, msg):
    if '"notificationType"' not in prose and '"eventType"' not in prose:
        return None
    data = None
    text = re.sub(r"!\r?\n ", "", prose)  # sendmail's 990-character line breaks inside the JSON
    start = text.find("{")
    while start >= 0 and data is None:
        try:
            data, _ = json.JSONDecoder().raw_decode(text[start:])
        except ValueError:
            start = text.find("{", start + 1)
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("Message"), str):  # an SNS envelope around the notification
        try:
            data = json.loads(data["Message"])
        except ValueError:
            return None
    result = report_from_ses(data)
    if result is None:
        return None
    result.message_id, result.subject = report.message_id, report.subject
    return result


def report_for(email, status="", diagnostic="", action="failed", kind=None, message_id="", token="",
               feedback_type="", format="webhook"):
    """A Report about one recipient from a provider's structured event (a webhook), classified like a DSN.

    `feedback_type` ("abuse", "opt-out", ...) makes it a complaint; `kind` overrides the
    classification when the provider states it plainly (e.g. SES "Permanent" with no reply).
    """
    report = Report(format=format, original_message_id=message_id or "", loft_token=token or "")
    address = clean_address(email)
    if feedback_type:
        report.format, report.reason, report.feedback_type = "arf", "feedback", feedback_type.lower()
        report.kind = "auth" if report.feedback_type == "auth-failure" else "complaint"
        report.is_complaint = report.kind == "complaint"
        report.recipients = [address] if address else []
        report.results = [Recipient(email=address, kind=report.kind, reason="feedback")] if address else []
        return report
    # The provider delivered straight to the recipient's MX, so the receiver's own wording applies.
    found_kind, reason, code = classify.classify(status, diagnostic, action=action, recipient=address)
    if kind and kind != found_kind:
        found_kind, reason = kind, {"hard": "userunknown", "soft": "onhold"}.get(kind, reason)
    report.results = [Recipient(email=address, action=(action or "failed").lower(), status=code or status,
                                diagnostic=diagnostic or "", kind=found_kind, reason=reason,
                                hard=found_kind == "hard")]
    return report.summarise()


def delivery_for(email, message_id="", token=""):
    """A Report saying the provider delivered one message to `email` (its "delivered" event)."""
    report = Report(format="webhook", original_message_id=message_id or "", loft_token=token or "")
    address = clean_address(email)
    report.recipients = [address] if address else []
    report.results = [Recipient(email=address, action="delivered", status="2.0.0", kind="none", reason="delivered")
                      for address in report.recipients]
    report.reason = "delivered"
    return report


def is_delivery(report):
    """True for a report that only says messages were delivered (nothing failed)."""
    return bool(report.results) and all(r.action == "delivered" for r in report.results)


def report_from_ses(data):
    """A Report from an Amazon SES notification (Bounce, Complaint, Delivery); None for other types."""
    kind = (data.get("notificationType") or data.get("eventType") or "").lower()
    mail = data.get("mail") or {}
    report = Report(format="ses")
    headers = {h.get("name", "").lower(): h.get("value", "") for h in mail.get("headers") or [] if isinstance(h, dict)}
    report.original_message_id = headers.get("message-id", "")
    report.loft_token = headers.get(TOKEN_HEADER.lower(), "")
    report.source_ip = (mail.get("sourceIp") or "")
    if kind == "bounce":
        bounce = data.get("bounce") or {}
        permanent = (bounce.get("bounceType") or "").lower() == "permanent"
        subtype = (bounce.get("bounceSubType") or "").lower()
        for item in bounce.get("bouncedRecipients") or []:
            address = clean_address(item.get("emailAddress", ""))
            diagnostic = item.get("diagnosticCode") or ""
            status = item.get("status") or ""
            recipient = Recipient(email=address, status=status, diagnostic=diagnostic,
                                  action=item.get("action") or "failed",
                                  remote_mta=bounce.get("remoteMtaIp") or bounce.get("reportingMTA") or "")
            kind_, reason, code = classify.classify(status, diagnostic, action=recipient.action, recipient=address,
                                                    remote_mta=bounce.get("reportingMTA") or "")
            if subtype in ("suppressed", "onaccountsuppressionlist"):
                kind_, reason = "hard", "suppressed"
            elif not diagnostic and not status:
                kind_, reason = ("hard", "userunknown") if permanent and subtype in ("general", "noemail") \
                    else ("soft", "onhold")
            recipient.kind, recipient.reason, recipient.status = kind_, reason, code or status
            recipient.hard = kind_ == "hard"
            report.results.append(recipient)
        return report.summarise()
    if kind == "complaint":
        complaint = data.get("complaint") or {}
        report.format = "arf"
        report.is_complaint = True
        report.kind = "complaint"
        report.reason = "feedback"
        report.feedback_type = (complaint.get("complaintFeedbackType") or "abuse").lower()
        report.recipients = [clean_address(r.get("emailAddress", ""))
                             for r in complaint.get("complainedRecipients") or [] if isinstance(r, dict)]
        report.results = [Recipient(email=a, kind="complaint", reason="feedback") for a in report.recipients if a]
        return report
    if kind == "delivery":
        delivery = data.get("delivery") or {}
        report.recipients = [clean_address(a) for a in delivery.get("recipients") or []]
        report.results = [Recipient(email=a, action="delivered", status="2.0.0", kind="none", reason="delivered")
                          for a in report.recipients if a]
        report.summarise()
        report.reason = "delivered"
        return report
    return None


# --- ARF (RFC 5965) --------------------------------------------------------------------------------------

def parse_arf(report, msg, arf_parts, original, texts, raw_text):
    report.format = "arf"
    report.reason = "feedback"
    fields = []
    for part in arf_parts:
        for block in field_blocks(text_of(part)):
            fields.extend(block)
    prose = "\n".join(text_of(part) for ctype, part in texts)
    if not fields:
        # A failure report without its machine-readable part (e.g. Exim's plain-text DMARC report).
        fields = [b for block in field_blocks(prose) for b in block]
    feedback_type = (get_field(fields, "Feedback-Type") or "").strip().lower()
    if not feedback_type:
        feedback_type = "auth-failure" if re.search(r"dmarc|dkim|spf|authentication", raw_text[:20000], re.I) \
            else "abuse"
    report.feedback_type = feedback_type
    report.source_ip = get_field(fields, "Source-IP")
    recipients = [clean_address(value) for key, value in fields if key.lower() in ("original-rcpt-to", "removal-recipient")]
    recipients = [r for r in recipients if r]
    fill_original(report, original, original_text(prose, raw_text))
    if not recipients and report.original_to:
        recipients = [report.original_to]
    if not recipients and original is None:
        loose = original_from_text(prose)
        to = clean_address(header(loose, "To")) if loose is not None else ""
        if to:
            recipients = [to]
    seen = []
    for address in recipients:
        if address not in seen:
            seen.append(address)
    report.recipients = seen
    if feedback_type == "auth-failure":
        kind = "auth"
    elif feedback_type in ("not-spam",):
        kind = "none"
    else:
        kind = "complaint"
    report.kind = kind
    report.is_complaint = kind == "complaint"
    report.results = [Recipient(email=a, kind=kind, reason="feedback") for a in seen]
    report.reason = "feedback" if kind == "complaint" else feedback_type
    return report


def is_unsubscribe_request(msg, subject):
    """A List-Unsubscribe mailto request (Apple Mail marks its own with X-Apple-Unsubscribe)."""
    if header(msg, "X-Apple-Unsubscribe").lower() == "true":
        return True
    return bool(re.match(r"^\s*unsubscribe\s+[A-Za-z0-9_-]{16,}\s*$", subject or "", re.I))


def parse_unsubscribe_request(report, msg):
    """An opt-out by mail: reported like an ARF "opt-out" for the person who sent it."""
    report.format = "mailto"
    report.kind = "complaint"
    report.is_complaint = True
    report.feedback_type = "opt-out"
    report.reason = "feedback"
    token = re.search(r"unsubscribe\s+([A-Za-z0-9_-]{16,})", report.subject or "", re.I)
    report.unsubscribe_token = token.group(1) if token else ""
    sender = clean_address(header(msg, "Reply-To") or header(msg, "From"))
    report.recipients = [sender] if sender else []
    report.results = [Recipient(email=sender, kind="complaint", reason="feedback")] if sender else []
    return report
