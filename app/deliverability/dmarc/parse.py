"""Read one DMARC aggregate report (RFC 7489 appendix C; RFC 9990 keeps the shape and adds a namespace).

    parse(source, keep_records=False) -> AggregateReport   metadata, policy, record and message counts
    iter_records(source, lenient)     -> AggregateRow, ...   the rows again, one at a time (for storing)

`source` is bytes, a path, or a seekable binary file. What it holds is found from its first bytes,
never from a file name: plain XML, gzip (`\\x1f\\x8b`), zip (`PK\\x03\\x04`) or a whole RFC 5322
email whose attachment is one of those (what receivers mail to the rua= address).

Hostile input is refused with a DmarcError that says why, never a traceback:
  * the XML is read by defusedxml with DTDs, entities and external references forbidden (billion
    laughs, XXE);
  * a compressed file or an email is at most MAX_INPUT_BYTES; the XML, once decompressed, at most
    MAX_XML_BYTES, counted as it streams (a zip's declared sizes may lie); a gzip or zip member that
    expands more than MAX_RATIO times is a bomb and refused as soon as that shows; a zip holds at
    most MAX_ZIP_MEMBERS files; containers nest at most MAX_DEPTH deep.
  * The XML is streamed (iterparse, each record dropped once read), so a 50 MB report takes
    bounded memory (docs/benchmarks.md).

Malformed reports are read the way parsedmarc reads them where it can: a strict pass first; when
the XML is not well-formed, a lenient pass that replaces bytes that are not valid in the declared
encoding, drops the stray `<xs:schema>` tags some receivers put around <feedback>, and rewrites the
XML declaration. What is still not well-formed is refused with the parser's line and column.
Like parsedmarc, a report id loses `<`, `>` and anything after `@` (some are Message-IDs), so the
same report mailed twice is recognised by (org_name, report_id).
"""
import codecs
import email
import io
import ipaddress
import os
import re
import zipfile
import zlib
from dataclasses import dataclass
from dataclasses import field
from email import policy as email_policy
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from app.errors import Problem

MAX_INPUT_BYTES = 25 * 1024 * 1024  # a .gz, .zip or email as received
MAX_XML_BYTES = 100 * 1024 * 1024  # the report itself, decompressed
MAX_RATIO = 400  # deflate tops out near 1,030:1; real reports compress 10-30:1
RATIO_FLOOR = 1024 * 1024  # below this much output a high ratio is harmless
MAX_ZIP_MEMBERS = 20
MAX_DEPTH = 3  # email -> zip -> gzip at most
MAX_TEXT = 1024  # characters kept of any one value
MAX_RESULTS = 20  # auth results (or reasons) kept per record
MAX_POLICY_TAGS = 20
MAX_ERRORS = 20
CHUNK = 64 * 1024

REPORT_TYPES = {"application/gzip", "application/x-gzip", "application/zip", "application/x-zip-compressed",
                "application/x-zip", "text/xml", "application/xml"}
REPORT_NAMES = (".xml", ".gz", ".gzip", ".zip")


class DmarcError(Problem):
    """Why a file is not a DMARC aggregate report Loft can read."""


class _NotWellFormed(DmarcError):
    """The strict XML pass failed; parse() tries the lenient pass before giving up."""


@dataclass
class AggregateRow:
    source_ip: str
    count: int
    disposition: str = ""
    dkim: str = ""  # policy_evaluated: the aligned DKIM result
    spf: str = ""  # policy_evaluated: the aligned SPF result
    header_from: str = ""
    envelope_from: str = ""
    envelope_to: str = ""
    reasons: tuple = ()  # (type, comment) overrides: forwarded, mailing_list, ...
    dkim_results: tuple = ()  # (domain, selector, result) as auth_results has them
    spf_results: tuple = ()  # (domain, scope, result)

    @property
    def dkim_aligned(self):
        return self.dkim == "pass"

    @property
    def spf_aligned(self):
        return self.spf == "pass"

    @property
    def dmarc_pass(self):
        return self.dkim_aligned or self.spf_aligned


@dataclass
class AggregateReport:
    org_name: str = ""
    email: str = ""
    report_id: str = ""
    begin: int | None = None  # unix seconds, as the report says
    end: int | None = None
    domain: str = ""  # policy_published/domain
    policy: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)  # report_metadata/error
    records: int = 0
    total_messages: int = 0
    container: str = ""  # how it came: "xml", "gzip", "email/zip", ...
    lenient: bool = False  # read by the lenient pass (not well-formed as sent)
    rows: list = field(default_factory=list)  # the AggregateRows, when asked to keep them

    def summary(self):
        """What `flask dmarc parse` prints."""
        return {"org_name": self.org_name, "report_id": self.report_id, "begin": self.begin, "end": self.end,
                "policy": self.policy, "records": self.records, "total_messages": self.total_messages}


# --- Entry points -------------------------------------------------------------------------------

def parse(source, keep_records=False, lenient=None):
    """The AggregateReport in `source`; lenient None tries strict XML first, then the lenient pass."""
    first_failure = None
    for mode in ([False, True] if lenient is None else [lenient]):
        report = AggregateReport(lenient=mode)
        try:
            for record in _read(source, mode, report):
                report.records += 1
                report.total_messages += record.count
                if keep_records:
                    report.rows.append(record)
        except _NotWellFormed as exc:
            first_failure = first_failure or exc
            continue
        _check_complete(report)
        return report
    raise DmarcError(str(first_failure))


def iter_records(source, lenient=False):
    """Each AggregateRow of the report, streamed (pass the `lenient` that parse() found)."""
    yield from _read(source, lenient, AggregateReport())


def _check_complete(report):
    if not report.report_id:
        raise DmarcError("The report has no report_id (report_metadata/report_id), so it cannot be told apart "
                         "from others.")
    if report.begin is None or report.end is None:
        raise DmarcError("The report has no date range (report_metadata/date_range with begin and end).")
    if report.end < report.begin:
        raise DmarcError(f"The report's date range ends ({report.end}) before it begins ({report.begin}).")


# --- Containers ---------------------------------------------------------------------------------

def _open_source(source):
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    if isinstance(source, (str, os.PathLike)):
        try:
            return open(source, "rb")
        except OSError as exc:
            raise DmarcError(f"Cannot read {source}: {exc.strerror or exc}.") from None
    if hasattr(source, "seek"):
        source.seek(0)
        return _Unclosed(source)
    raise TypeError("a DMARC report source is bytes, a path or a seekable binary file")


def _read(source, lenient, report):
    handle = _open_source(source)
    try:
        stream, report.container = _xml_stream(handle, 0)
        if lenient:
            stream = _Lenient(stream)
        yield from _records(stream, report)
    finally:
        handle.close()


def _kind(head):
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"<") or head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "xml"
    return "other"


def _xml_stream(handle, depth):
    """(a reader of the XML, how it was packed) for a seekable `handle`."""
    if depth > MAX_DEPTH:
        raise DmarcError("The report is packed too many times over (an archive inside an archive inside ...).")
    head = handle.read(1024)
    handle.seek(0)
    kind = _kind(head)
    if not head:
        raise DmarcError("The file is empty.")
    if kind == "xml":
        return _Limited(handle, MAX_XML_BYTES, "The XML report"), "xml"
    size = _size(handle)
    if size > MAX_INPUT_BYTES:
        raise DmarcError(f"The file is {size / 1048576:.1f} MB; a compressed report or a report email may be at "
                         f"most {MAX_INPUT_BYTES // 1048576} MB.")
    if kind == "gzip":
        inner = _Gzip(handle)
    elif kind == "zip":
        inner = _zip_member(handle)
    elif depth == 0:
        return _from_email(handle.read(), depth)
    else:
        raise DmarcError("The attachment is neither XML, gzip nor zip.")
    # The decompressed data is sniffed again: a .xml.gz inside a .zip happens.
    spooled = _Peekable(inner)
    inner_kind = _kind(spooled.peek(1024))
    if inner_kind in ("zip", "gzip"):
        nested, how = _xml_stream(_spool(spooled), depth + 1)
        return nested, f"{kind}/{how}"
    if inner_kind != "xml":
        raise DmarcError(f"The {kind} file does not hold an XML report.")
    return _Limited(spooled, MAX_XML_BYTES, "The decompressed report"), kind


def _size(handle):
    here = handle.tell()
    handle.seek(0, io.SEEK_END)
    size = handle.tell()
    handle.seek(here)
    return size


def _spool(stream):
    """A nested archive, read into memory (it is at most MAX_INPUT_BYTES) so zipfile can seek in it."""
    data = stream.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise DmarcError(f"An archive inside the report is over {MAX_INPUT_BYTES // 1048576} MB.")
    return io.BytesIO(data)


def _zip_member(handle):
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise DmarcError(f"The zip file cannot be read ({exc}).") from None
    files = [info for info in archive.infolist() if not info.is_dir()]
    if len(archive.infolist()) > MAX_ZIP_MEMBERS:
        raise DmarcError(f"The zip file holds {len(archive.infolist())} entries; a DMARC report zip holds one "
                         f"(at most {MAX_ZIP_MEMBERS} are looked at).")
    if not files:
        raise DmarcError("The zip file is empty.")
    # The report is the first .xml member; a zip of one file with another name (.xml.gz) is read too.
    member = next((info for info in files if info.filename.lower().endswith(".xml")), files[0])
    if member.flag_bits & 0x1:
        raise DmarcError(f"{member.filename} in the zip file is encrypted.")
    if member.file_size > MAX_XML_BYTES:
        raise DmarcError(f"{member.filename} in the zip file would be {member.file_size / 1048576:.0f} MB once "
                         f"unpacked; a report may be at most {MAX_XML_BYTES // 1048576} MB.")
    if member.file_size > RATIO_FLOOR and member.file_size > MAX_RATIO * max(member.compress_size, 1):
        raise DmarcError(_bomb_text("zip", member.file_size, member.compress_size))
    try:
        opened = archive.open(member)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, ValueError) as exc:
        raise DmarcError(f"{member.filename} in the zip file cannot be read ({exc}).") from None
    return _Guarded(opened, member.compress_size, "zip")


def _from_email(raw, depth):
    """The first attachment of an email that holds a report (the receivers' rua mail)."""
    message = email.message_from_bytes(raw, policy=email_policy.compat32)
    if not message.keys():
        raise DmarcError("This is not a DMARC aggregate report: it is not XML, gzip, zip or an email with a "
                         "report attached.")
    seen = 0
    for part in message.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        name = (part.get_filename() or "").lower()
        if ctype not in REPORT_TYPES and not (name.endswith(REPORT_NAMES) and ctype.startswith("application/")):
            continue
        try:
            payload = part.get_payload(decode=True)
        except Exception:  # noqa: BLE001 - a broken transfer encoding is one unreadable attachment
            payload = None
        if not payload or _kind(payload[:1024]) == "other":
            continue
        seen += 1
        stream, how = _xml_stream(io.BytesIO(payload), depth + 1)
        return stream, f"email/{how}"
    raise DmarcError("The email has no DMARC report attached (looked for .xml, .xml.gz and .zip attachments"
                     f"{'' if not seen else ' that can be read'}).")


def _bomb_text(kind, out, consumed):
    return (f"The {kind} data expands more than {MAX_RATIO} times ({consumed:,} bytes became over {out:,}): "
            "refused as a decompression bomb.")


# --- Readers --------------------------------------------------------------------------------------

class _Reader:
    """The read(n) that iterparse and the sniffing need, over some other source."""

    def read(self, size=-1):
        raise NotImplementedError

    def close(self):
        pass


class _Unclosed(_Reader):
    """A caller's file object: read, but left open for the caller."""

    def __init__(self, handle):
        self.handle = handle

    def read(self, size=-1):
        return self.handle.read(size)

    def seek(self, *args):
        return self.handle.seek(*args)

    def tell(self):
        return self.handle.tell()


class _Limited(_Reader):
    """Refuses once more than `limit` bytes have come through."""

    def __init__(self, stream, limit, what):
        self.stream, self.limit, self.what, self.seen = stream, limit, what, 0

    def read(self, size=-1):
        data = self.stream.read(CHUNK if size is None or size < 0 else size)
        self.seen += len(data)
        if self.seen > self.limit:
            raise DmarcError(f"{self.what} is over {self.limit // 1048576} MB; Loft reads reports up to that size.")
        return data


class _Peekable(_Reader):
    def __init__(self, stream):
        self.stream, self.buffer = stream, b""

    def peek(self, size):
        while len(self.buffer) < size:
            data = self.stream.read(size - len(self.buffer))
            if not data:
                break
            self.buffer += data
        return self.buffer[:size]

    def read(self, size=-1):
        if self.buffer:
            data, self.buffer = self.buffer, b""
            return data
        return self.stream.read(size)


class _Gzip(_Reader):
    """gzip members one after the other (RFC 1952 allows several); bytes after the last member are
    ignored, as gzip(1) and parsedmarc do (Mimecast appends a CRLF). Output is produced CHUNK at a
    time, so a bomb is seen before it is in memory."""

    def __init__(self, handle):
        self.handle, self.consumed, self.produced = handle, 0, 0
        self.inflate = zlib.decompressobj(wbits=31)
        self.pending = b""
        self.done = False

    def read(self, size=-1):
        size = CHUNK if size is None or size < 0 else max(1, size)
        while not self.done:
            if not self.pending:
                self.pending = self.handle.read(CHUNK)
                self.consumed += len(self.pending)
                if not self.pending:
                    raise DmarcError("The gzip data ends too early: the file is cut short.")
            try:
                out = self.inflate.decompress(self.pending, size)
            except zlib.error as exc:
                raise DmarcError(f"The gzip data is damaged ({exc}).") from None
            self.pending = self.inflate.unconsumed_tail
            if self.inflate.eof:
                rest = self.inflate.unused_data  # (unconsumed_tail repeats it once the member ends)
                if rest.startswith(b"\x1f\x8b"):
                    self.inflate, self.pending = zlib.decompressobj(wbits=31), rest
                else:
                    self.done = True
            self.produced += len(out)
            if self.produced > RATIO_FLOOR and self.produced > MAX_RATIO * max(self.consumed, 1):
                raise DmarcError(_bomb_text("gzip", self.produced, self.consumed))
            if out:
                return out
        return b""


class _Guarded(_Reader):
    """A zip member: its read errors in words, and the ratio checked against what it really produces."""

    def __init__(self, member, compressed, kind):
        self.member, self.compressed, self.kind, self.produced = member, compressed, kind, 0

    def read(self, size=-1):
        try:
            data = self.member.read(CHUNK if size is None or size < 0 else size)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
            raise DmarcError(f"The {self.kind} data is damaged ({exc}).") from None
        self.produced += len(data)
        if self.produced > RATIO_FLOOR and self.produced > MAX_RATIO * max(self.compressed, 1):
            raise DmarcError(_bomb_text(self.kind, self.produced, self.compressed))
        return data

    def close(self):
        self.member.close()


_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*\?>", re.I)
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_SCHEMA_TAG = re.compile(r"</?xs:schema\b[^>]*>")


class _Lenient(_Reader):
    """The XML as parsedmarc repairs it, streamed: text decoded from the declared encoding with bad
    bytes replaced, re-encoded as UTF-8 under a plain declaration, stray <xs:schema> tags removed."""

    def __init__(self, stream):
        self.stream, self.decoder, self.carry, self.started = stream, None, "", False

    def _start(self, data):
        if data.startswith(b"\xef\xbb\xbf"):
            data, encoding = data[3:], "utf-8"
        elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
            encoding = "utf-16"
        else:
            declared = _DECLARATION.match(data)
            found = _ENCODING.search(declared.group(0)) if declared else None
            encoding = found.group(1).decode("ascii") if found else "utf-8"
        try:
            self.decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        except LookupError:
            self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return data

    def read(self, size=-1):
        while True:
            data = self.stream.read(CHUNK)
            if not self.started:
                data = self._start(data)
            text = self.carry + self.decoder.decode(data, final=not data)
            if not self.started:
                text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text, count=1)
                text = '<?xml version="1.0" encoding="UTF-8"?>' + text
                self.started = True
            # A tag cut at the chunk's end waits for the next chunk (a tag is short; cap the wait).
            cut = text.rfind("<")
            if data and cut != -1 and text.find(">", cut) == -1 and len(text) - cut < 4096:
                text, self.carry = text[:cut], text[cut:]
            else:
                self.carry = ""
            text = _SCHEMA_TAG.sub("", text)
            if text or not data:
                return text.encode("utf-8")


# --- The XML ------------------------------------------------------------------------------------

def _local(tag):
    """The tag without its namespace (RFC 9990 adds one; older reports have none)."""
    return tag.rsplit("}", 1)[-1] if tag[:1] == "{" else tag


def _text(element):
    return (element.text or "").strip()[:MAX_TEXT] if element is not None else ""


def _child(element, name):
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _children(element, name):
    return [child for child in element if _local(child.tag) == name] if element is not None else []


def _records(stream, report):
    """Fill `report`'s metadata and yield each AggregateRow, dropping each element once read.

    Only the root's children are looked at (at their end, whole), so the loop does no work for
    the elements inside them: about 20 a record."""
    root, depth, number = None, 0, 0
    events = SafeET.iterparse(stream, events=("start", "end"), forbid_dtd=True, forbid_entities=True,
                              forbid_external=True)
    try:
        for event, element in events:
            if event == "start":
                if root is None:
                    root = element
                    if _local(root.tag) != "feedback":
                        # _NotWellFormed: the lenient pass drops a stray <xs:schema> around <feedback>.
                        raise _NotWellFormed(f"This XML is not a DMARC aggregate report: its root element is "
                                             f"<{_local(root.tag)}>, not <feedback>.")
                depth += 1
                continue
            depth -= 1
            if depth != 1:
                continue
            name = _local(element.tag)
            if name == "record":
                number += 1
                yield _record(element, number)
            elif name == "report_metadata":
                _report_metadata(element, report)
            elif name == "policy_published":
                _policy(element, report)
            root.clear()  # what was read is no longer needed: memory stays flat
    except DefusedXmlException as exc:
        raise DmarcError(f"Refused: the XML {_forbidden(exc)}, which no DMARC report needs (XML bomb and "
                         "external-entity guard).") from None
    except ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise _NotWellFormed(f"The XML is not well-formed: {_expat_words(exc)} (line {line}, column {column}).") \
            from None
    if root is None:
        raise DmarcError("The file holds no XML elements.")


def _forbidden(exc):
    name = type(exc).__name__
    if name == "DTDForbidden":
        return "declares a DTD"
    if name == "EntitiesForbidden":
        return "declares entities"
    return "refers to an external resource"


def _expat_words(exc):
    return re.sub(r":\s*line \d+, column \d+$", "", str(exc))


def _report_metadata(element, report):
    for child in element:
        name = _local(child.tag)
        if name == "org_name":
            report.org_name = _text(child)
        elif name == "email":
            report.email = _text(child)
        elif name == "report_id":
            # As parsedmarc: a Message-ID-like id loses its brackets and host.
            report.report_id = _text(child).replace("<", "").replace(">", "").split("@")[0].strip()
        elif name == "error" and len(report.errors) < MAX_ERRORS:
            report.errors.append(_text(child))
        elif name == "date_range":
            for edge in ("begin", "end"):
                found = _child(child, edge)
                if found is not None:
                    setattr(report, edge, _timestamp(_text(found), edge))


def _policy(element, report):
    for child in element:
        name = _local(child.tag)
        if name == "domain":
            report.domain = _text(child).lower().rstrip(".")
            report.policy["domain"] = report.domain
        elif len(report.policy) < MAX_POLICY_TAGS and len(child) == 0:
            report.policy[name] = _text(child)


def _timestamp(text, name):
    try:
        value = int(float(text))
    except ValueError:
        raise DmarcError(f"The report's date_range {name} “{text[:40]}” is not a unix time.") from None
    if not 0 <= value < 2 ** 33:
        raise DmarcError(f"The report's date_range {name} {value} is out of range.")
    return value


def _record(element, number):
    row = _child(element, "row")
    if row is None:
        raise DmarcError(f"Record {number} has no <row>.")
    raw_count = _text(_child(row, "count"))
    try:
        count = int(raw_count)
    except ValueError:
        raise DmarcError(f"Record {number}: the message count “{raw_count[:40]}” is not a whole number.") from None
    if count < 0:
        raise DmarcError(f"Record {number}: the message count {count} is negative.")
    source_ip = _text(_child(row, "source_ip"))
    try:
        source_ip = str(ipaddress.ip_address(source_ip))
    except ValueError:
        source_ip = source_ip[:64]  # kept as sent; the digest shows it without a reverse name
    evaluated = _child(row, "policy_evaluated")
    identifiers = _child(element, "identifiers")
    auth = _child(element, "auth_results")

    def value(parent, name):
        return _text(_child(parent, name)).lower() if parent is not None else ""

    reasons = tuple((value(reason, "type"), _text(_child(reason, "comment")))
                    for reason in _children(evaluated, "reason")[:MAX_RESULTS])
    dkim_results = tuple((value(r, "domain"), _text(_child(r, "selector")), value(r, "result"))
                         for r in _children(auth, "dkim")[:MAX_RESULTS])
    spf_results = tuple((value(r, "domain"), value(r, "scope") or "mfrom", value(r, "result"))
                        for r in _children(auth, "spf")[:MAX_RESULTS])
    return AggregateRow(source_ip=source_ip, count=count, disposition=value(evaluated, "disposition"),
                  dkim=value(evaluated, "dkim"), spf=value(evaluated, "spf"),
                  header_from=value(identifiers, "header_from"), envelope_from=value(identifiers, "envelope_from"),
                  envelope_to=value(identifiers, "envelope_to"), reasons=reasons, dkim_results=dkim_results,
                  spf_results=spf_results)
