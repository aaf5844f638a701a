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

Its parts, by noun: app/imports/rows.py parses a row (the job's ImportPlan),
app/imports/chunks.py writes a chunk in one transaction on a thread of its
own while the next one is parsed (ChunkWriter, commit_chunk: plain SQL, see
there), app/imports/rejects.py keeps the rejects file. Rows given as data
(the API's bulk upsert) skip the file: one chunk, read in one call.
Measured figures: docs/benchmarks.md.

No Event row is written per imported contact: at a million rows that would
double the writes, and "imported" says nothing a contact's `source` and
`created_at` do not. One AuditLog row records each finished import instead.
"""
import contextlib
import gc
import logging
import os
import sys
import threading

from app.consent.suppression import Checker
from app.db import db
from app.imports import csvsniff
from app.imports import screening
from app.imports.chunks import ChunkWriter
from app.imports.chunks import Superseded
from app.imports.csvsniff import FileProblem
from app.imports.rejects import DUPLICATE
from app.imports.rejects import start_rejects
from app.imports.rejects import trim_rejects
from app.imports.rows import ImportPlan
from app.imports.rows import Reject
from app.imports.services import ImportProblem
from app.imports.services import holds_rows
from app.imports.services import import_dir
from app.imports.services import load_rows
from app.imports.services import remove_upload
from app.imports.services import summary
from app.models import AuditLog
from app.models import ImportJob
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
    except Superseded:
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
    plan = ImportPlan(job, columns)
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
            raise Superseded()
        start_rejects(rejects_path, columns, job)
    else:
        ImportJob.update(status="running", rejects_path=rejects_path, heartbeat_at=utcnow(), error="").where(
            ImportJob.id == job.id).execute()
        trim_rejects(rejects_path, columns, _last_row_number(job, data_rows), job)
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
        writer = ChunkWriter(plan, job, rejects_file, on_entered)
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
                    except Reject as exc:
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


def _last_row_number(job, data_rows=_data_rows):
    """The file row number of the last committed row (0 when nothing was committed)."""
    if job.processed_rows == 0:
        return 0
    for position, (number, _, _) in enumerate(data_rows(job), start=1):
        if position == job.processed_rows:
            return number
    return 0


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
