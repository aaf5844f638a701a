"""The CSV import itself: the chunked run of one job that a task carries out.

The import is built for a million rows on SQLite and for being killed at
any moment:

* A structure pass reads the whole file first (row count for the progress
  bar; a file that is mostly unreadable fails here, before anything is
  written, so a failed import changes nothing already stored).
* Rows are then parsed and validated in Python, a chunk at a time, and
  each chunk is written in ONE transaction: contacts, subscriptions, custom
  fields and the job's counters together. The counters' UPDATE is guarded by
  the chunk's starting row, so a second worker on the same job, or a replay
  of a committed chunk, changes nothing.
* A restarted import skips the rows already committed (processed_rows) and
  carries on; inserts are ON CONFLICT DO NOTHING and the in-file duplicate
  set is rebuilt from the skipped rows, so a resume or a second import of the
  same file never creates a duplicate.

The hot path is plain SQL through the peewee connection: peewee's
insert_many builds every row through its query machinery, which measured 4x
slower than the whole rest of the import. Many-row INSERT ... ON CONFLICT DO
NOTHING (app.db.insert_values: a VALUES list on SQLite, arrays through unnest
on PostgreSQL); on SQLite the new ids are known from the rowids (see
_insert_contacts), elsewhere RETURNING gives them. While one chunk is written
on a thread of its own, the next one is parsed (_ChunkWriter). Rows given as
data (the API's bulk upsert) skip the file: one chunk, read in one call.
Measured figures: docs/benchmarks.md.

No Event row is written per imported contact: at a million rows that would
double the writes, and "imported" says nothing a contact's `source` and
`created_at` do not. One AuditLog row records each finished import instead.
"""
import contextlib
import csv
import gc
import json
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from operator import itemgetter

from flask import current_app
from flask import has_app_context
from peewee import Value

from app import addresses
from app.consent.suppression import Checker
from app.contacts.export import neutralise
from app.contacts.fields import MAX_TEXT
from app.contacts.fields import RESERVED_KEYS
from app.contacts.fields import fields_of
from app.contacts.fields import parse_value
from app.contacts.tags import cached_splitter
from app.contacts.tags import tag_rows
from app.db import close_db
from app.db import db
from app.db import insert_values
from app.db import is_sqlite
from app.db import max_id
from app.db import select_among
from app.db import update_rows
from app.imports import csvsniff
from app.imports import joins
from app.imports import screening
from app.imports.csvsniff import FileProblem
from app.imports.services import ImportProblem
from app.imports.services import holds_rows
from app.imports.services import import_dir
from app.imports.services import load_rows
from app.imports.services import remove_upload
from app.imports.services import slug
from app.imports.services import summary
from app.models import BLOCKED_STATUSES
from app.models import AuditLog
from app.models import Contact
from app.models import CustomField
from app.models import ImportJob
from app.models import Subscription
from app.models import utcnow
from app.notices import alerts

log = logging.getLogger(__name__)

# Rows per transaction: a twentieth of the file, between 5,000 and 50,000 rows. Random
# addresses dirty pages all over the (team, email) index, and every commit writes each
# dirty page to the WAL (and a checkpoint copies it back): at a million rows 50,000-row
# chunks spend 40% less on commits than 20,000 (measured). The rows are parsed before the
# transaction begins, so the write lock is held only for the SQL: about 0.5 s a chunk.
MIN_CHUNK_ROWS = 5000
MAX_CHUNK_ROWS = 50000
# Rows per statement: few, big statements matter with the writer thread, which after each
# one must win the GIL back from the parser (up to the interpreter's 5 ms switch interval).
# Plain multi-row VALUES only: SQLite 3.40 parses INSERT ... SELECT FROM (VALUES ...) in
# quadratic time (measured: 4.7 us a row at 2,000 rows, 17 us at 8,000; plain VALUES 0.5 us).
# 4,600 contacts x 7 values and 10,900 subscriptions x 3 values stay under SQLite's 32,766
# bound variables (PostgreSQL allows 65,535).
SQL_BATCH = 4600
SUBSCRIBE_BATCH = 10900
MAX_NAME = 255

BLOCKED_REASONS = {
    "unsubscribed": "Not added to lists: this address has unsubscribed.",
    "bounced": "Not added to lists: mail to this address bounced.",
    "complained": "Not added to lists: this address marked your mail as spam.",
    "suppressed": "Not added to lists: this contact is suppressed.",
    "listed": "Not added to lists: the address (or its domain) is on the suppression list.",
    "listed_new": "Not imported: the address (or its domain) is on the suppression list.",
}
DUPLICATE = "The same address appears earlier in the file; only the first row was imported."
TAG_DROPPED = "Tag not added: "  # starts every reason about a tag cell, see _commit_chunk

_quote = json.encoder.encode_basestring  # a JSON string literal, exactly as json.dumps writes it


class _Superseded(Exception):
    """Another run of the same job committed this chunk first."""


# --- Addresses ------------------------------------------------------------------

def check_email(raw):
    """(normalised address, None) or (None, reason): app.addresses.normalise_email for one row."""
    if not raw.strip():
        return None, "No email address."
    try:
        return addresses.normalise_email(raw), None
    except addresses.InvalidEmail as exc:
        return None, f"Not a valid email address: {exc}"


# --- The import -----------------------------------------------------------------

class _Plan:
    """Everything about a job that does not change from row to row."""

    def __init__(self, job, columns):
        self.job = job
        self.team_id = job.team_id
        self.columns = columns
        self.width = len(columns)
        self.mode = job.mode
        self.list_ids = job.list_ids
        self.validation = job.team.import_validation  # the team's policy, see app/imports/screening.py
        mapping = {int(k): v for k, v in job.mapping.items()}
        fields = {f.key: f.type for f in fields_of(job.team_id)}
        self.field_types = fields
        self.email = self.name = self.first = self.last = self.json_column = self.tags = None
        self.typed = []  # (index, key, type, column title)
        for index, target in sorted(mapping.items()):
            if index >= self.width:
                continue
            if target == "email":
                self.email = index
            elif target == "name":
                self.name = index
            elif target == "first_name":
                self.first = index
            elif target == "last_name":
                self.last = index
            elif target == "attributes":
                self.json_column = index
            elif target == "tags":
                self.tags = index
            elif target.startswith("field:") and target[6:] in fields:
                self.typed.append((index, target[6:], fields[target[6:]], columns[index]))
        if self.email is None:
            raise ImportProblem("No column is mapped to the email address.")
        self.split_tags = cached_splitter()  # shared by the parser and the writer thread
        self.json_keys = {}  # raw JSON key -> field key
        self.new_fields = {}  # field key -> type, created with the chunk that first uses it

        self.parse = self._parser()

    def _parser(self):
        """parse(cells) -> (email, name, attributes as JSON text, dropped), or raise _Reject.

        Only a bad address rejects the row. A bad optional value (a number that is not one, a
        text or name too long, broken JSON) is left out and its reason listed in `dropped`
        (None when nothing was), so the contact is kept and the rejects file names the field.

        A closure over locals, writing the JSON text directly: this runs once per
        row, and at a million rows attribute lookups, a dict per row and a
        json.dumps call per row are a fifth of the import's time (measured).
        """
        email_at, name_at, json_at, tags_at = self.email, self.name, self.json_column, self.tags
        split_tags = self.split_tags
        name_parts = [i for i in (self.first, self.last) if i is not None]
        typed = [(index, _quote(key) + ":", field_type, title) for index, key, field_type, title in self.typed]
        keyed = self.typed
        json_attributes = self._json_attributes
        fast_email = addresses.FAST_EMAIL.fullmatch  # addresses.is_fast_email, inlined below: once per row
        quote = _quote

        def parse(cells):
            email = cells[email_at].strip().lower()
            if not (fast_email(email) and len(email) <= 254 and "--" not in email):
                email, reason = check_email(cells[email_at])
                if reason:
                    raise _Reject(reason)
            dropped = None
            name = cells[name_at].strip() if name_at is not None else ""
            if not name and name_parts:
                name = " ".join([part for part in (cells[i].strip() for i in name_parts) if part])
            if len(name) > MAX_NAME:
                dropped = [f"The name is longer than {MAX_NAME} characters."]
                name = ""
            if tags_at is not None and cells[tags_at] and not cells[tags_at].isspace():
                problems = split_tags(cells[tags_at])[1]
                if problems:
                    dropped = (dropped or []) + [TAG_DROPPED + problem for problem in problems]
            if json_at is None:
                parts = []
                for index, quoted_key, field_type, title in typed:
                    raw = cells[index]
                    if not raw or raw.isspace():
                        continue
                    if field_type == "text":
                        raw = raw.strip()
                        if len(raw) > MAX_TEXT:
                            dropped = (dropped or []) + [f"“{title}” is longer than {MAX_TEXT:,} characters."]
                            continue
                        parts.append(quoted_key + quote(raw))
                    elif field_type == "number" and raw.isdecimal():
                        parts.append(quoted_key + str(int(raw)))  # the common case, without a regex
                    else:
                        try:
                            parts.append(quoted_key + json.dumps(parse_value(field_type, raw)))
                        except ValueError:
                            dropped = (dropped or []) + [_conversion_reason(field_type, title, raw)]
                return email, name, "{" + ",".join(parts) + "}" if parts else "{}", dropped
            # With a JSON attributes column (listmonk's format) the mapped fields win over its keys.
            raw_json = cells[json_at]
            problems = []
            attributes = json_attributes(raw_json, problems) if raw_json.strip() else {}
            for index, key, field_type, title in keyed:
                raw = cells[index]
                if not raw or raw.isspace():
                    continue
                if field_type == "text":
                    raw = raw.strip()
                    if len(raw) > MAX_TEXT:
                        problems.append(f"“{title}” is longer than {MAX_TEXT:,} characters.")
                        continue
                    attributes[key] = raw
                else:
                    try:
                        attributes[key] = parse_value(field_type, raw)
                    except ValueError:
                        problems.append(_conversion_reason(field_type, title, raw))
            if problems:
                dropped = (dropped or []) + problems
            return email, name, json_object(attributes), dropped

        return parse

    def _json_attributes(self, raw, problems):
        """The attributes of the JSON column; what cannot be used is left out and described in `problems`."""
        try:
            data = json.loads(raw)
        except ValueError:
            problems.append(f"“{self.columns[self.json_column]}” is not valid JSON.")
            return {}
        if not isinstance(data, dict):
            problems.append(f"“{self.columns[self.json_column]}” must be a JSON object, like {{\"city\": \"Paris\"}}.")
            return {}
        attributes = {}
        for raw_key, value in data.items():
            key = self.json_keys.get(raw_key)
            if key is None:
                key = self._json_key(raw_key, value)
            if value is None or key == "":
                continue
            field_type = self.field_types.get(key) or self.new_fields.get(key)
            if isinstance(value, str) and field_type in ("number", "date", "boolean"):
                try:
                    value = parse_value(field_type, value)
                except ValueError:
                    problems.append(_conversion_reason(field_type, raw_key, value))
                    continue
                if value is None:
                    continue
            attributes[key] = value
        return attributes

    def _json_key(self, raw_key, value):
        key = slug(str(raw_key))
        if key in RESERVED_KEYS:
            key = slug("attr_" + key)
        if key and key not in self.field_types and key not in self.new_fields:
            if isinstance(value, bool):
                self.new_fields[key] = "boolean"
            elif isinstance(value, (int, float)):
                self.new_fields[key] = "number"
            else:
                self.new_fields[key] = "text"
        self.json_keys[raw_key] = key
        return key


def _conversion_reason(field_type, title, raw):
    shown = str(raw).strip()[:40]
    if field_type == "number":
        return f"“{shown}” in “{title}” is not a number."
    if field_type == "date":
        return f"“{shown}” in “{title}” is not a date; use YYYY-MM-DD."
    return f"“{shown}” in “{title}” is not yes or no."


class _Reject(Exception):
    pass


_by_email = itemgetter(1)


def chunk_rows(total_rows):
    return max(MIN_CHUNK_ROWS, min(MAX_CHUNK_ROWS, total_rows // 20))


def run_import(job_id, chunk_size=None, on_entered=None):
    """Import (or carry on importing) job `job_id`. Safe to call again at any time: a finished job
    is left alone, a running one resumes after its last committed chunk. `on_entered(count)` is called
    after each chunk whose subscribers entered automations (list_join), so the caller can have those
    runs moved while the rest of the file is still importing (a service never enqueues)."""
    job = ImportJob.get_or_none(ImportJob.id == job_id)
    if job is None or job.status not in ("queued", "running"):
        return job
    try:
        return _run(job, chunk_size, on_entered)
    except _Superseded:
        log.info("import %s: another run of it got ahead; leaving it that one", job.id)
    except ImportProblem as exc:
        _fail(job, str(exc))
    except Exception as exc:  # a bug or a full disk: stop honestly; committed chunks stay, Resume carries on
        log.exception("import %s stopped", job.id)
        job = ImportJob.get_by_id(job.id)
        _fail(job, f"The import stopped after {job.processed_rows:,} rows because of an internal error "
                   f"({exc.__class__.__name__}). Rows up to there are imported; use Resume to carry on.")
    return ImportJob.get_by_id(job_id)


def _fail(job, message):
    moved = (ImportJob.update(status="failed", error=message, finished_at=utcnow())
             .where((ImportJob.id == job.id) & (ImportJob.status != "failed")).execute())
    if not moved:  # failed before: the newer words replace the older, and nobody is told twice
        ImportJob.update(error=message, finished_at=utcnow()).where(ImportJob.id == job.id).execute()
        return
    _tell(job, f"Import of {job.filename} stopped", message)


def _columns(job):
    """The column titles from the file itself (the header, or 'Column N' for a headerless file)."""
    for _, cells, problem in csvsniff.rows(job.path, job.encoding, job.delimiter):
        if problem:
            raise ImportProblem(f"The first row of the file cannot be read: {problem}")
        if job.has_header:
            try:
                return csvsniff.header_names(cells)
            except FileProblem as exc:
                raise ImportProblem(str(exc))
        return [f"Column {i + 1}" for i in range(len(cells))]
    raise ImportProblem("The file has no rows.")


def _data_rows(job):
    rows = csvsniff.rows(job.path, job.encoding, job.delimiter)
    if job.has_header:
        next(rows, None)
    return rows


def _ragged(cells, width):
    """A row with another number of fields than the header (extra empty trailing fields are fine)."""
    return len(cells) != width and not (len(cells) > width and not "".join(cells[width:]).strip())


def _run(job, chunk_size, on_entered=None):
    if not os.path.exists(job.path):
        raise ImportProblem("The uploaded file is gone. Upload it again; nothing was imported from it.")
    if holds_rows(job):
        with _collector_paused():
            return _run_given_rows(job, chunk_size, on_entered)
    return _run_file(job, chunk_size, _columns(job), _data_rows, on_entered=on_entered)


def _run_given_rows(job, chunk_size, on_entered=None):
    """A job whose rows were given as data (at most the API's 10,000): read in one call, checked like a
    file's rows, and written in one chunk, so in one transaction."""
    columns, given = load_rows(job)

    def data_rows(_job):
        return ((number, cells, None) for number, cells in enumerate(given, start=2))  # as if after a header
    return _run_file(job, chunk_size or max(len(given), 1), columns, data_rows, len(given), on_entered)


def _run_file(job, chunk_size, columns, data_rows, known_total=None, on_entered=None):
    """The run over `data_rows(job)`: (row number, cells, problem) in the file's order."""
    plan = _Plan(job, columns)
    rejects_path = job.rejects_path or os.path.join(import_dir(), str(job.team_id), f"import-{job.id}.rejects.csv")
    os.makedirs(os.path.dirname(rejects_path), exist_ok=True)
    if job.status == "queued" and job.processed_rows == 0:
        # One quick pass over the whole file before anything is written.
        if known_total is not None:
            total, bad, first = known_total, 0, None
        else:
            total, bad, first = csvsniff.count_rows(job.path, job.encoding, job.delimiter, plan.width,
                                                    job.has_header)
        if total == 0:
            raise ImportProblem("The file has no contacts below the header.")
        if bad * 2 > total:
            raise ImportProblem(f"Most rows of this file cannot be read as CSV ({bad:,} of {total:,}; the first is "
                                f"{first}). Check the file and the delimiter; nothing was imported.")
        started = (ImportJob.update(status="running", total_rows=total, rejects_path=rejects_path,
                                    heartbeat_at=utcnow(), error="")
                   .where((ImportJob.id == job.id) & (ImportJob.status == "queued") & (ImportJob.processed_rows == 0))
                   .execute())
        if not started:
            raise _Superseded()
        _start_rejects(rejects_path, columns, job)
    else:
        ImportJob.update(status="running", rejects_path=rejects_path, heartbeat_at=utcnow(), error="").where(
            ImportJob.id == job.id).execute()
        _trim_rejects(rejects_path, columns, _last_row_number(job, data_rows), job)
    job = ImportJob.get_by_id(job.id)
    chunk_size = chunk_size or chunk_rows(job.total_rows)
    checker = Checker(job.team_id)
    screened = bool(checker.emails or checker.domains)

    # The in-file duplicate check keeps every accepted address of the file in memory:
    # about 100 bytes each, so 100 MB for a million rows. Rows committed by an earlier
    # run are replayed through the same checks (without writing) to rebuild it.
    seen = set()
    done = job.processed_rows
    position = 0
    chunk = []  # (row number, email, name, attributes, cells, on the suppression list)
    rejects = []  # (row number, kind, reason, cells)
    width = plan.width
    parse = plan.parse
    with open(rejects_path, "a", encoding="utf-8", newline="") as rejects_file, _quick_thread_switches():
        writer = _ChunkWriter(plan, job, rejects_file, on_entered)
        try:
            for number, cells, problem in data_rows(job):
                position += 1
                replay = position <= done
                if problem is not None:
                    rejects.append((number, "rejected", problem, []))
                elif len(cells) != width and _ragged(cells, width):
                    rejects.append((number, "rejected",
                                    f"This row has {len(cells)} fields but the header has {width}.", cells))
                elif "\ufffd" in cells[-1]:
                    rejects.append((number, "rejected", "The row ends with bytes that are not text; the file may "
                                                        "have been cut off.", cells))
                else:
                    try:
                        email, name, attributes, dropped = parse(cells)
                    except _Reject as exc:
                        rejects.append((number, "rejected", str(exc), cells))
                    else:
                        if email in seen:
                            rejects.append((number, "duplicate", DUPLICATE, cells))
                        else:
                            seen.add(email)
                            if not replay:
                                chunk.append((number, email, name, attributes, cells, screened and checker(email),
                                              dropped))
                if replay:
                    rejects.clear()
                    continue
                if position - done >= chunk_size:
                    chunk, flags = screening.screen(plan.validation, chunk, rejects)
                    writer.submit(done, position, chunk, rejects, flags)
                    done = position
                    chunk, rejects = [], []
            if position > done:
                chunk, flags = screening.screen(plan.validation, chunk, rejects)
                writer.submit(done, position, chunk, rejects, flags)
        finally:
            writer.close()
    _finish(job)
    return ImportJob.get_by_id(job.id)


_switching = threading.Lock()
_switching_users = 0
_switch_interval = None


@contextlib.contextmanager
def _quick_thread_switches(interval=0.001):
    """Let the interpreter switch threads every millisecond instead of every 5 while imports run.

    The writer thread gives up the GIL for every SQL statement and must win it
    back from the parser thread, which keeps it until the switch interval runs
    out: at 5 ms that is seconds of a million-row import spent waiting
    (measured: 16.0 s at 5 ms, 13.9 s at 1 ms). The setting is process-wide,
    so it is counted: the last import to finish puts the old value back. Other
    threads of the worker only switch a little more often meanwhile.
    """
    global _switching_users, _switch_interval
    with _switching:
        if _switching_users == 0:
            _switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(interval, _switch_interval))
        _switching_users += 1
    try:
        yield
    finally:
        with _switching:
            _switching_users -= 1
            if _switching_users == 0:
                sys.setswitchinterval(_switch_interval)


_collecting = threading.Lock()
_collecting_pausers = 0
_collector_was_on = False


@contextlib.contextmanager
def _collector_paused():
    """Hold off the cyclic garbage collector while a job of given rows runs.

    Its 10,000 rows are some 100,000 small lists, tuples and dicts made in a
    few tenths of a second. Each batch of 700 new ones starts a collection, and
    every so often one walks every object of the process (the app, its models,
    its schemas): measured a third of the job's CPU. The rows hold no cycles, so
    nothing waits to be freed meanwhile; the memory is bounded by the API's
    10,000 rows; and the first collection afterwards sees what is left. Like
    the switch interval, the pause is process-wide and counted.
    """
    global _collecting_pausers, _collector_was_on
    with _collecting:
        if _collecting_pausers == 0:
            _collector_was_on = gc.isenabled()
            gc.disable()
        _collecting_pausers += 1
    try:
        yield
    finally:
        with _collecting:
            _collecting_pausers -= 1
            if _collecting_pausers == 0 and _collector_was_on:
                gc.enable()


class _ChunkWriter:
    """Commits chunks on a thread of its own while the caller parses the next chunk.

    sqlite3 releases the GIL while a statement runs, so on two cores the
    inserts of one chunk overlap the parsing of the next (a million rows:
    14.5 s instead of 15.9 s in one thread, measured). Chunks are still
    committed one at a time and in order, each in one transaction, and at
    most one is in flight: a crash loses at most the chunk being written,
    which a resume writes again. The thread has its own database connection (closed with the app context
    each chunk is written in, opened again by the next).
    """

    def __init__(self, plan, job, rejects_file, on_entered=None):
        self.plan = plan
        self.on_entered = on_entered
        # The writer thread works in the caller's app (its settings, and in tests its clock file): the automations
        # a chunk starts and the tick it asks for must see the same "now" as everything else.
        self.app = current_app._get_current_object() if has_app_context() else None
        self.job = job
        self.rows_file = rejects_file
        self.rows_writer = rejects_writer(rejects_file, job)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"import-{job.id}")
        self.pending = None
        self.committed = 0

    def submit(self, start, end, chunk, rejects, flags=None):
        # Sorting and the INSERT parameters are made here, while the writer is still busy with
        # the previous chunk: the writer thread does little but run SQL, so it rarely waits for the GIL.
        stamp, batches = _prepare(self.plan.team_id, chunk)
        self._wait()
        # New custom fields found so far travel with this chunk; the parser knows their types from now on.
        new_fields, self.plan.new_fields = self.plan.new_fields, {}
        self.plan.field_types.update(new_fields)
        self.pending = self.pool.submit(self._commit, self.plan, self.job, start, end, chunk, stamp, batches,
                                        rejects, self.rows_writer, self.rows_file, new_fields, flags)

    def _commit(self, *chunk):
        with self.app.app_context() if self.app is not None else contextlib.nullcontext():
            entered = _commit_chunk(*chunk)
            # Right after the chunk's commit: the runs it started move now, not after the whole import.
            if entered and self.on_entered is not None:
                self.on_entered(entered)
        return entered

    def _wait(self):
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()  # the writer's exception, if any, is raised here
            self.committed += 1

    def close(self):
        try:
            self._wait()
        finally:
            self.pool.submit(close_db).result()  # the writer thread's own connection
            self.pool.shutdown()


def _prepare(team_id, chunk):
    """(timestamp, INSERT batches) for a chunk: the rows that may become contacts (not those on the
    suppression list), sorted by address so the inserts walk the (team, email) index in order
    instead of jumping around it (a third less CPU for random addresses, measured)."""
    stamp = utcnow().isoformat(" ")
    fresh = sorted((row for row in chunk if not row[5]), key=_by_email)
    batches = []
    for start in range(0, len(fresh), SQL_BATCH):
        params = []
        for row in fresh[start:start + SQL_BATCH]:
            email = row[1]
            params += (team_id, email, email[email.rindex("@") + 1:], row[2], row[3], stamp, stamp)
        batches.append(params)
    return stamp, batches


def _commit_chunk(plan, job, start, end, chunk, stamp, batches, rejects, writer, rejects_file, new_fields=None,
                  flags=None):
    """Write one chunk: contacts, subscriptions, new fields and the job's counters, all or nothing.

    Every row is offered to one INSERT ... ON CONFLICT DO NOTHING; those it
    did not insert already exist and are looked up (and in upsert mode
    updated). The rejected rows are appended to the rejects file before the
    commit; a resume trims the file back to the last committed row.
    """
    updated = skipped = 0
    with db.atomic():
        if new_fields:
            CustomField.insert_many(
                [{"team": plan.team_id, "key": key, "label": key, "type": field_type}
                 for key, field_type in new_fields.items()]).on_conflict_ignore().execute()
        created, new_emails, new_ids, after_id = _insert_contacts(batches)
        # Usually every row offered became a new contact: only the ones on the suppression list remain.
        if new_emails is None:
            others = [row for row in chunk if row[5]]
        else:
            others = [row for row in chunk if row[1] not in new_emails]
        existing = _existing(plan.team_id, [row[1] for row in others], full=plan.mode == "upsert") if others else {}
        imported_new = set(new_emails) if new_emails is not None else {row[1] for row in chunk if not row[5]}
        for number, email, name, attributes, cells, listed, dropped in chunk:
            if dropped and email in imported_new:
                rejects.append((number, "partial", _partly(dropped), cells))
        subscribe = new_ids  # None on SQLite: the new contacts are the rows after `after_id`
        subscribe_existing = []
        changes = []
        for number, email, name, attributes, cells, listed, dropped in others:
            found = existing.get(email)
            if found is None:  # a new address, but on the suppression list
                rejects.append((number, "blocked", BLOCKED_REASONS["listed_new"], cells))
                continue
            contact_id, status = found[0], found[1]
            if dropped and plan.mode == "upsert":
                rejects.append((number, "partial", _partly(dropped), cells))
            elif dropped and plan.tags is not None:
                # Tags reach existing contacts in either mode (like lists), so their bad names are reported.
                tag_dropped = [reason for reason in dropped if reason.startswith(TAG_DROPPED)]
                if tag_dropped:
                    rejects.append((number, "partial", _partly(tag_dropped), cells))
            change = _merge(found, name, attributes) if plan.mode == "upsert" else None
            if change:
                changes.append(change + (stamp, contact_id))
                updated += 1
            else:
                skipped += 1
            if status in BLOCKED_STATUSES or listed:
                reason = BLOCKED_REASONS[status if status in BLOCKED_STATUSES else "listed"]
                rejects.append((number, "blocked", reason, cells))
            else:
                subscribe_existing.append(contact_id)
        if changes:
            update_rows([Contact.name, Contact.attributes, Contact.updated_at], Contact.id).run(changes)
        for list_id in plan.list_ids:
            if subscribe is None:
                # The new contacts are the ids above after_id (see _insert_contacts): one INSERT ... SELECT.
                new_contacts = Contact.select(Contact.id, Value(list_id), Value("subscribed"), Value(stamp)).where(
                    Contact.id > after_id)
                (Subscription.insert_from(new_contacts, [Subscription.contact, Subscription.list, Subscription.status,
                                                         Subscription.created_at]).on_conflict_ignore().execute())
                _subscribe(subscribe_existing, list_id, stamp)
            else:
                _subscribe(subscribe + subscribe_existing, list_id, stamp)
        if plan.tags is not None:
            _tag_chunk(plan, chunk, imported_new, existing, after_id)
        if flags:
            _flag_chunk(plan, flags, existing, after_id)
        kinds = {"rejected": 0, "duplicate": 0, "blocked": 0, "partial": 0}
        rejects.sort(key=lambda r: r[0])
        for number, kind, reason, cells in rejects:
            kinds[kind] += 1
            writer.writerow([number, reason] + [neutralise(c) for c in cells])
        rejects_file.flush()
        claimed = (ImportJob.update(processed_rows=end, created=ImportJob.created + created,
                                    updated=ImportJob.updated + updated, skipped=ImportJob.skipped + skipped,
                                    rejected=ImportJob.rejected + kinds["rejected"],
                                    duplicates=ImportJob.duplicates + kinds["duplicate"],
                                    blocked=ImportJob.blocked + kinds["blocked"],
                                    partial=ImportJob.partial + kinds["partial"], heartbeat_at=utcnow())
                   .where((ImportJob.id == job.id) & (ImportJob.processed_rows == start)
                          & (ImportJob.status == "running")).execute())
        if not claimed:
            raise _Superseded()
    return joins.start_automations(plan.team_id, plan.list_ids, stamp, new_ids if new_ids is not None else after_id,
                                   subscribe_existing)


def _tag_chunk(plan, chunk, imported_new, existing, after_id):
    """Tag the chunk's contacts (new, and existing ones, blocked or not: a tag is no consent) with the
    good names of their Tags cells; the bad ones were reported when the row was parsed. One lookup
    of the new contacts' ids (on SQLite the id range above after_id, see _insert_contacts) and a few
    multi-row INSERTs for the whole chunk."""
    at = plan.tags
    wanted = {}
    for row in chunk:
        raw = row[4][at]
        if raw and not raw.isspace() and (row[1] in imported_new or row[1] in existing):
            names = plan.split_tags(raw)[0]
            if names:
                wanted[row[1]] = names
    if not wanted:
        return
    ids = {email: found[0] for email, found in existing.items()}
    if after_id is not None:
        ids.update(db.execute(Contact.select(Contact.email, Contact.id).where(Contact.id > after_id)).fetchall())
    else:
        missing = [email for email in wanted if email not in existing]
        ids.update({email: found[0] for email, found in _existing(plan.team_id, missing, full=False).items()})
    tag_rows(plan.team_id, {ids[email]: names for email, names in wanted.items() if email in ids})


def _flag_chunk(plan, flags, existing, after_id):
    """Tag the chunk's contacts that address validation flagged ({email: tag name}, screening.screen),
    new ones and existing ones alike: the verdict is about the address."""
    ids = {email: found[0] for email, found in existing.items() if email in flags}
    if after_id is not None:  # SQLite: the new contacts are the ids above after_id (see _insert_contacts)
        new = db.execute(Contact.select(Contact.email, Contact.id).where(Contact.id > after_id)).fetchall()
        ids.update((email, contact_id) for email, contact_id in new if email in flags)
    else:
        missing = [email for email in flags if email not in ids]
        ids.update({email: found[0] for email, found in _existing(plan.team_id, missing, full=False).items()})
    tag_rows(plan.team_id, {contact_id: [flags[email]] for email, contact_id in ids.items()})


def _existing(team_id, emails, full):
    """{email: (id, status[, name, attributes])} of the team's contacts among `emails`."""
    columns = [Contact.id, Contact.email, Contact.status] + ([Contact.name, Contact.attributes] if full else [])
    found = {}
    for start in range(0, len(emails), SQL_BATCH):
        batch = emails[start:start + SQL_BATCH]
        cursor = select_among(columns, Contact.team, Contact.email, len(batch)).run([team_id] + batch)
        for row in cursor.fetchall():
            found[row[1]] = (row[0], row[2]) + tuple(row[3:])
    return found


def _insert_contacts(batches):
    """Offer the rows to INSERT ... ON CONFLICT DO NOTHING.

    Returns (how many were inserted, their addresses, their ids, after_id).
    On SQLite the addresses are None when every row offered was inserted, the
    ids are None, and the new contacts are exactly those with an id above
    after_id: the transaction holds the write lock, so nobody else inserts. This
    spares RETURNING, whose rows come back one sqlite3_step at a time, and the
    sqlite3 module lets go of the GIL and must win it back from the parser
    thread at every step (up to 5 ms each): seconds per million rows (measured).
    Elsewhere (PostgreSQL) RETURNING gives the ids.
    """
    if not is_sqlite():
        ids = {}
        for params in batches:
            ids.update(_insert_sql(len(params) // 7, True).run(params).fetchall())
        return len(ids), set(ids), list(ids.values()), None
    after_id = max_id("contact")
    offered = inserted = 0
    for params in batches:
        offered += len(params) // 7
        inserted += _insert_sql(len(params) // 7, False).run(params).rowcount
    if inserted == offered:
        return inserted, None, None, after_id
    # The cursor's own rows: peewee's row wrapper costs more than the query at 10,000 rows (measured).
    new = db.execute(Contact.select(Contact.email).where(Contact.id > after_id)).fetchall()
    return inserted, {email for (email,) in new}, None, after_id


def _insert_sql(rows, returning):
    """The INSERT of `rows` new contacts (7 parameters each), skipping addresses the team has."""
    return insert_values([Contact.team, Contact.email, Contact.domain, Contact.name, Contact.attributes,
                          Contact.created_at, Contact.updated_at], rows,
                         fixed={Contact.status: "active", Contact.source: "import", Contact.consent_source: "",
                                Contact.consent_ip: "", Contact.consent_text: ""},
                         conflict=[Contact.team, Contact.email],
                         returning=[Contact.email, Contact.id] if returning else ())


def json_object(attributes):
    """json.dumps for the flat objects an import makes, twice as fast (measured); anything
    but strings, integers and booleans goes to json.dumps."""
    if not attributes:
        return "{}"
    parts = []
    for key, value in attributes.items():
        kind = type(value)
        if kind is str:
            parts.append(f"{_quote(key)}:{_quote(value)}")
        elif kind is int:
            parts.append(f"{_quote(key)}:{value}")
        elif kind is bool:
            parts.append(f"{_quote(key)}:{'true' if value else 'false'}")
        else:
            return json.dumps(attributes)
    return "{" + ",".join(parts) + "}"


def _subscribe(contact_ids, list_id, stamp):
    """Subscribe contacts to a list; an existing subscription (even an unsubscribed one) is left as it is."""
    for start in range(0, len(contact_ids), SUBSCRIBE_BATCH):
        params = []
        for contact_id in contact_ids[start:start + SUBSCRIBE_BATCH]:
            params += (contact_id, list_id, stamp)
        insert_values([Subscription.contact, Subscription.list, Subscription.created_at], len(params) // 3,
                      fixed={Subscription.status: "subscribed"},
                      conflict=[Subscription.contact, Subscription.list]).run(params)


def _merge(found, name, attributes):
    """(name, attributes JSON) when the file changes an existing contact, else None.
    Empty cells never erase what is stored; the status is never touched."""
    _, _, old_name, stored = found
    old = Contact.attributes.python_value(stored)  # JSON text from SQLite, a dict from PostgreSQL's jsonb
    if not isinstance(old, dict):
        old = {}
    attributes = json.loads(attributes) if attributes != "{}" else None
    merged = {**old, **attributes} if attributes else old
    new_name = name or old_name
    if new_name == old_name and merged == old:
        return None
    return new_name, json_object(merged)


PARTLY = "Imported without this value: "


def _partly(dropped):
    return PARTLY + " ".join(dropped)


def given_row_errors(job):
    """[(index, field, message)] of a job of given rows (services.save_rows), read from its rejects file:
    the row's position in the rows given (from 0) and the name of what the message is about: "email"
    (not a valid address, a repeat of an earlier row, or on the suppression list), "lists" (not subscribed:
    unsubscribed, bounced, complained or suppressed), or, for a value left out, "name", "tags" or the
    column of a custom field, each named in the message as “title”. One entry per field left out."""
    if not (holds_rows(job) and job.rejects_path and os.path.exists(job.rejects_path)):
        return []
    with open(job.rejects_path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=job.delimiter or ",")
        header = next(reader, None) or []
        titles = header[2:]
        not_subscribed = set(BLOCKED_REASONS.values()) - {BLOCKED_REASONS["listed_new"]}
        errors = []
        for row in reader:
            if len(row) < 2 or not row[0].isdigit():
                continue
            index, message = int(row[0]) - 2, row[1]  # row numbers count a header as row 1
            if message in not_subscribed:
                errors.append((index, "lists", message))
            elif not message.startswith(PARTLY):
                errors.append((index, "email", message))
            else:
                named = [title for title in titles
                         if f"in “{title}” is not" in message or f"“{title}” is longer than" in message]
                if TAG_DROPPED in message:
                    named.append("tags")
                errors.extend((index, title, message) for title in named or ["name"])
    return errors


def rejects_writer(handle, job):
    """A CSV writer in the source file's own dialect: a semicolon file gets a semicolon rejects file,
    which the same spreadsheet (and a re-import after fixing) reads without questions."""
    return csv.writer(handle, delimiter=job.delimiter or ",")


def _start_rejects(path, columns, job):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("\ufeff")  # so spreadsheet programs read it as UTF-8
        rejects_writer(handle, job).writerow(["row", "reason"] + [neutralise(c) for c in columns])


def _last_row_number(job, data_rows=_data_rows):
    """The file row number of the last committed row (0 when nothing was committed)."""
    if job.processed_rows == 0:
        return 0
    for position, (number, _, _) in enumerate(data_rows(job), start=1):
        if position == job.processed_rows:
            return number
    return 0


def _trim_rejects(path, columns, last_row, job):
    """On resume: keep only the rejects of committed chunks. A crash between writing a chunk's
    rejects and its commit leaves rows here that the resumed run will write again."""
    if last_row == 0 or not os.path.exists(path):
        _start_rejects(path, columns, job)
        return
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=job.delimiter or ",")
        header = next(reader, None) or ["row", "reason"] + columns
        kept = [row for row in reader if row and row[0].isdigit() and int(row[0]) <= last_row]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write("\ufeff")
        writer = rejects_writer(handle, job)
        writer.writerow(header)
        writer.writerows(kept)
    os.replace(tmp, path)


def _finish(job):
    with db.atomic():
        moved = ImportJob.update(status="done", finished_at=utcnow(), heartbeat_at=utcnow()).where(
            (ImportJob.id == job.id) & (ImportJob.status == "running")).execute()
        job = ImportJob.get_by_id(job.id)
        AuditLog.create(team=job.team_id, user=job.user_id, action="contacts.import", target=f"import:{job.id}",
                        data=summary(job))
    remove_upload(job)
    if moved:  # only the run that finished it tells the team
        _tell(job, f"Import of {job.filename} finished",
              f"{job.processed_rows:,} rows read: {job.created:,} contacts added, {job.updated:,} updated, "
              f"{job.rejected:,} rejected" + (" (the rejects file is on the import's page)." if job.rejected else "."))


def _tell(job, subject, text):
    """The import_finished notice (app/notices/preferences.py decides who sees it and who gets it by email).
    A failure to store it is logged: the import's own result stands."""
    try:
        alerts.notify(job.team_id, subject, text, kind="import_finished", data={"import": job.id})
    except Exception:  # noqa: BLE001 - the notice is a courtesy; the job's row is the record
        log.exception("import %s: the import_finished notice failed", job.id)
