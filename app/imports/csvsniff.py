"""What is in an uploaded CSV file: its encoding, delimiter, header and first rows.

Nothing here touches the database. `sniff()` reads the whole file once to
be sure of the encoding (a Latin-1 "é" on row 80,000 must not turn a file we
took for UTF-8 into an import that dies half-way), then parses only the start
for the preview. `rows()` is the one reader the import itself uses, so the
preview and the import can never disagree about how a line is split.
"""
import codecs
import csv
import io
import re
from dataclasses import dataclass
from dataclasses import field

from app.errors import Problem

# Big enough for any sane cell, small enough that an unclosed quote which
# swallows the rest of a huge file is reported instead of eating memory.
FIELD_LIMIT = 131072
csv.field_size_limit(FIELD_LIMIT)

PREVIEW_ROWS = 10
SAMPLE_BYTES = 64 * 1024
BLOCK = 1024 * 1024
DELIMITERS = (",", ";", "\t", "|")
DELIMITER_LABELS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}
ENCODING_LABELS = {
    "utf-8": "UTF-8", "utf-8-sig": "UTF-8 (with byte order mark)", "utf-16": "UTF-16",
    "utf-16-le": "UTF-16 (little-endian, no byte order mark)", "utf-16-be": "UTF-16 (big-endian, no byte order mark)",
    "cp1252": "Windows-1252 (Latin-1)", "latin-1": "Latin-1 (ISO-8859-1)",
}
# A first row holding something like an address is data, not a header.
LOOKS_LIKE_EMAIL = re.compile(r"^\s*[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+\s*$")

# Files people upload by mistake, recognised by their first bytes.
SIGNATURES = (
    (b"PK\x03\x04", "an Excel workbook (.xlsx) or another zip archive"),
    (b"\xd0\xcf\x11\xe0", "an old-style Excel workbook (.xls)"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"SQLite format 3", "an SQLite database"),
)
SAVE_AS_CSV = "Open it in your spreadsheet program and save it as “CSV UTF-8”, then upload that file."


class FileProblem(Problem):
    """The file cannot be imported at all; the message says why and what to do."""


@dataclass
class Sniffed:
    encoding: str  # a Python codec name
    delimiter: str
    has_header: bool
    columns: list  # display names, one per column ("Column 3" when the header cell is empty)
    preview: list  # up to PREVIEW_ROWS rows of cells
    truncated: bool = False  # the file ends in the middle of a character
    warnings: list = field(default_factory=list)

    @property
    def encoding_label(self):
        return encoding_label(self.encoding)

    @property
    def delimiter_label(self):
        return delimiter_label(self.delimiter)


def encoding_label(encoding):
    return ENCODING_LABELS.get(encoding, encoding)


def delimiter_label(delimiter):
    return DELIMITER_LABELS.get(delimiter, repr(delimiter))


def sniff(path):
    """Describe the CSV file at `path`, or raise FileProblem with a message for the person."""
    with open(path, "rb") as handle:
        head = handle.read(SAMPLE_BYTES)
    if not head.strip(b"\r\n\t \x00\xef\xbb\xbf\xff\xfe"):
        raise FileProblem("The file is empty. Export your contacts again and upload the CSV file.")
    for magic, what in SIGNATURES:
        if head.startswith(magic):
            raise FileProblem(f"This is {what}, not a CSV file. {SAVE_AS_CSV}")
    encoding, truncated = detect_encoding(path, head)
    text = head.decode(encoding, errors="replace")
    if encoding in ("utf-8-sig", "utf-16") and text.startswith("\ufeff"):
        text = text[1:]
    if len(head) == SAMPLE_BYTES and "\n" in text:
        text = text[:text.rindex("\n") + 1]  # never sniff a half line
    if _looks_binary(text):
        raise FileProblem(f"This looks like a binary file, not a CSV text file. {SAVE_AS_CSV}")
    delimiter = detect_delimiter(text)
    return preview(path, encoding, delimiter, truncated=truncated)


def preview(path, encoding, delimiter, has_header=None, truncated=False):
    """The columns and first rows of a file whose encoding and delimiter are known. With
    has_header=None, a first row that holds an address is taken for data, not a header."""
    sample_rows = []
    for _, cells, problem in rows(path, encoding, delimiter):
        if problem is None:
            sample_rows.append(cells)
        if len(sample_rows) > PREVIEW_ROWS:
            break
    if not sample_rows:
        raise FileProblem("The file has no rows we can read. Check that it is a CSV file with one contact per line.")
    first = sample_rows[0]
    if has_header is None:
        has_header = not any(LOOKS_LIKE_EMAIL.match(cell) for cell in first)
    if has_header:
        columns = header_names(first)
        shown = sample_rows[1:PREVIEW_ROWS + 1]
        if not shown:
            raise FileProblem("The file has a header row but no contacts below it.")
    else:
        columns = [f"Column {i + 1}" for i in range(len(first))]
        shown = sample_rows[:PREVIEW_ROWS]
    warnings = []
    ragged = sum(1 for row in shown if len(row) != len(columns))
    if ragged:
        warnings.append(f"{ragged} of the first {len(shown)} rows do not have {len(columns)} fields; "
                        "such rows will be rejected (check the delimiter).")
    if truncated:
        warnings.append("The file ends in the middle of a character: it may have been cut off. "
                        "The last row will probably be rejected.")
    return Sniffed(encoding, delimiter, has_header, columns, shown, truncated, warnings)


def header_names(cells):
    """Display names for a header row; refuses duplicates, which would make a mapping ambiguous."""
    names = []
    seen = {}
    for index, cell in enumerate(cells):
        name = cell.strip().lstrip("\ufeff") or f"Column {index + 1}"
        key = name.casefold()
        if key in seen:
            raise FileProblem(f"The header row has the column “{name}” twice (columns {seen[key] + 1} and "
                              f"{index + 1}). Rename or remove one of them and upload the file again.")
        seen[key] = index
        names.append(name)
    return names


def detect_encoding(path, head):
    """(codec, truncated): byte order marks first, then UTF-16 by its zero bytes, then a strict
    UTF-8 pass over the whole file; Windows-1252 or Latin-1 when that fails."""
    if head.startswith(codecs.BOM_UTF8):
        codec = "utf-8-sig"
    elif head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise FileProblem("The file is in UTF-32, which is not supported. Save it as “CSV UTF-8” and upload it again.")
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        codec = "utf-16"
    else:
        codec = _utf16_without_bom(head)
    if codec:
        truncated = _check_whole_file(path, codec)
        if truncated is None:
            raise FileProblem(f"The file starts like {encoding_label(codec)} text but has invalid bytes further "
                              f"on. {SAVE_AS_CSV}")
        return codec, truncated
    if b"\x00" in head:
        raise FileProblem(f"This looks like a binary file, not a CSV text file. {SAVE_AS_CSV}")
    truncated = _check_whole_file(path, "utf-8")
    if truncated is not None:
        return "utf-8", truncated
    # Not UTF-8: a Windows export is almost always cp1252, which only lacks five byte values;
    # when one of those occurs the file can only be Latin-1 proper.
    return ("latin-1" if _has_bytes(path, b"\x81\x8d\x8f\x90\x9d") else "cp1252"), False


def _utf16_without_bom(head):
    sample = head[:4096]
    if len(sample) < 4:
        return None
    even = sample[0::2].count(0)
    odd = sample[1::2].count(0)
    half = len(sample) // 2
    if odd > half * 0.6 and even < half * 0.1:
        return "utf-16-le"
    if even > half * 0.6 and odd < half * 0.1:
        return "utf-16-be"
    return None


def _check_whole_file(path, codec):
    """Decode the file block by block: False when it is valid, True when only its very end is
    cut off in the middle of a character, None when it is not in this encoding."""
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    with open(path, "rb") as handle:
        while True:
            block = handle.read(BLOCK)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                if not block and exc.end >= len(exc.object):
                    return True  # an incomplete sequence at end of file: cut off, not another encoding
                return None
            if not block:
                return False


def ends_mid_character(path, encoding):
    """True when the file's last character is incomplete (a file cut off in transfer)."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 4))
        tail = handle.read()
    if encoding.startswith("utf-16"):
        return size % 2 == 1
    if not encoding.startswith("utf-8"):
        return False
    for back in range(1, len(tail) + 1):
        byte = tail[-back]
        if byte & 0xC0 != 0x80:  # the lead byte of the last character
            needed = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            return needed > back
    return False


def _has_bytes(path, values):
    table = bytes(range(256))
    with open(path, "rb") as handle:
        while True:
            block = handle.read(BLOCK)
            if not block:
                return False
            if len(block.translate(table, values)) != len(block):
                return True


def _looks_binary(text):
    if "\x00" in text:
        return True
    controls = sum(1 for ch in text if ch < " " and ch not in "\r\n\t")
    return controls > max(2, len(text) // 100)


def detect_delimiter(text):
    """The delimiter that splits the first lines into the most columns, the same number on each line."""
    best, best_score = ",", (0, 0)
    for delimiter in DELIMITERS:
        try:
            parsed = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if row][:50]
        except csv.Error:
            continue
        if not parsed or len(parsed[0]) < 2:
            continue
        width = len(parsed[0])
        consistency = sum(1 for row in parsed if len(row) == width) / len(parsed)
        score = (round(consistency, 2), width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def open_text(path, encoding):
    """The file as text for the csv module. Invalid bytes cannot occur (sniff checked the whole
    file), except an incomplete character at the very end of a cut-off file: that becomes U+FFFD."""
    return open(path, encoding=encoding, errors="replace", newline="")


def rows(path, encoding, delimiter):
    """Yield (row_number, cells, problem) for every non-blank record; the header is row 1.

    Records are counted like a spreadsheet counts rows, so a quoted newline
    does not shift the numbers. A record the csv module cannot parse (a stray
    quote, an unclosed quote at the end of a truncated file, a giant cell) is
    yielded with cells=None and a problem, and reading goes on with the next line.
    """
    with open_text(path, encoding) as handle:
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        number = 0
        while True:
            try:
                # The for loop keeps the per-row cost to the csv module's own; a parse error
                # leaves it, is reported, and the next pass of the while loop carries on.
                for cells in reader:
                    number += 1
                    if not cells or (len(cells) == 1 and not cells[0].strip()):
                        continue  # a blank line is not a row
                    if number == 1 and cells[0].startswith("\ufeff"):
                        cells[0] = cells[0][1:]
                    yield number, cells, None
                return
            except csv.Error as exc:
                number += 1
                yield number, None, _csv_problem(str(exc))


def count_rows(path, encoding, delimiter, width, has_header):
    """(rows, broken rows, the first problem) of a whole file, as fast as the csv module reads.

    A broken row is one rows() would report, or one with another number of
    fields than `width` (extra empty trailing fields are fine).
    """
    total = bad = number = 0
    first = None
    header_pending = has_header
    with open_text(path, encoding) as handle:
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        while True:
            try:
                for cells in reader:
                    number += 1
                    if not cells or (len(cells) == 1 and not cells[0].strip()):
                        continue
                    if header_pending:
                        header_pending = False
                        continue
                    total += 1
                    if len(cells) != width and (len(cells) < width or "".join(cells[width:]).strip()):
                        bad += 1
                        first = first or f"row {number} has {len(cells)} fields but the header has {width}"
                break
            except csv.Error as exc:
                number += 1
                total += 1
                bad += 1
                first = first or f"row {number}: {_csv_problem(str(exc))}"
    return total, bad, first


def _csv_problem(message):
    if "unexpected end of data" in message:
        return "The file ends inside a quoted field; it may have been cut off, or a quote (\") is not closed."
    if "field larger than field limit" in message:
        return (f"A field is longer than {FIELD_LIMIT:,} characters; probably a quote (\") is not closed "
                "earlier in the file.")
    if "expected after" in message:
        return "A quote (\") in the middle of a field: quote the whole field and double any quote inside it."
    return f"This row could not be read as CSV ({message})."
