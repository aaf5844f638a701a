"""Health checks: can the database and the queue be read AND written, and is the database intact.

A database that answers SELECT 1 may still refuse every write (a full disk, a read-only mount or file)
or be corrupt (a backup copied over it beside a stale -wal): either way Loft cannot work, so /health
must not say "ok". Each check stays cheap enough to poll every second:

- write: one committed UPDATE of a one-row table (health_probe); commits are what fail on a full disk;
- space: a nearly full disk counts as a failure already, because SQLite reuses its -wal file after
  each checkpoint, so the tiny probe may still fit while the engine's and imports' writes do not;
- integrity: PRAGMA quick_check reads the whole file, so it runs at most every INTEGRITY_EVERY seconds
  per process, on its own thread; /health waits for it at most INTEGRITY_WAIT and otherwise reports
  the last result (a big database's first check finishes in the background).
"""
import os
import pathlib
import shutil
import sqlite3
import threading
import time

from peewee import SqliteDatabase

from app.db import db
from app.db import ping
from app.db import sqlite_check
from app.models import HealthProbe
from app.models import utcnow

INTEGRITY_EVERY = 600  # seconds between two quick_checks of one database by one process
INTEGRITY_WAIT = 1.0  # seconds /health waits for a quick_check in progress
QUEUE_PROBE_KEY = "loft:health-probe"
DISK_LOW_BYTES = 64 * 1024 * 1024  # free space below which writes are about to fail (a checkpoint, an import)


def _problem(exc):
    return f"{type(exc).__name__}: {str(exc)[:120]}"


def check_database():
    try:
        ping()
    except Exception as exc:  # any failure means "not answering"; the name and message tell the operator why
        return f"error: {_problem(exc)}"
    try:
        # One statement in autocommit, not db.atomic(): when the commit fails (disk full) SQLite has
        # already rolled back, and atomic()'s own rollback would hide the real error behind its own.
        if not HealthProbe.update(checked_at=utcnow()).where(HealthProbe.id == 1).execute():
            HealthProbe.create(id=1, checked_at=utcnow())
    except Exception as exc:
        return f"error: cannot write ({_problem(exc)})"
    return _disk_low(_sqlite_file(db.obj)) or check_integrity()


def check_queue(huey):
    try:
        pending = huey.pending_count()
    except Exception as exc:
        return f"error: {type(exc).__name__}", None
    low = _disk_low(getattr(huey.storage, "filename", None))
    if low:
        return low, pending
    try:
        huey.put(QUEUE_PROBE_KEY, utcnow().isoformat())  # a task cannot be queued when this fails
        huey.get(QUEUE_PROBE_KEY)  # reading it back removes it
    except Exception as exc:
        return f"error: cannot write ({_problem(exc)})", pending
    return "ok", pending


def _sqlite_file(database):
    if isinstance(database, SqliteDatabase) and database.database != ":memory:":
        return database.database
    return None


def _disk_low(path):
    """'' or 'error: disk almost full (...)' for the file system holding the file at `path`."""
    if not path:
        return ""
    try:
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
    except OSError:
        return ""  # the other checks report a missing directory
    return f"error: disk almost full ({free // (1024 * 1024)} MB free)" if free < DISK_LOW_BYTES else ""


# --- Integrity -------------------------------------------------------------------------------

class _Integrity:
    def __init__(self):
        self.result = "ok"  # until a first check says otherwise
        self.checked = None  # time.monotonic() of the last finished check
        self.thread = None  # the check in progress


_integrity = {}  # database file -> _Integrity
_integrity_lock = threading.Lock()


def check_integrity(database=None):
    """'ok', or 'error: corrupt (...)' from the last PRAGMA quick_check of an SQLite database."""
    path = _sqlite_file(database or db.obj)
    if path is None:
        return "ok"  # PostgreSQL checks its own pages
    with _integrity_lock:
        state = _integrity.setdefault(path, _Integrity())
        due = state.checked is None or time.monotonic() - state.checked >= INTEGRITY_EVERY
        if state.thread is None and due:
            state.thread = threading.Thread(target=_quick_check, args=(path, state), daemon=True,
                                            name="health-quick-check")
            state.thread.start()
        thread = state.thread
    if thread is not None:
        thread.join(INTEGRITY_WAIT)
    return state.result


def _quick_check(path, state):
    try:
        # mode=rw: never create an empty file where the database should be
        connection = sqlite3.connect(f"{pathlib.Path(path).absolute().as_uri()}?mode=rw", uri=True, timeout=10)
        try:
            rows = sqlite_check(connection, quick=True, limit=3)
        finally:
            connection.close()
        result = "ok" if rows == ["ok"] else f"error: corrupt ({'; '.join(rows)[:200]})"
    except sqlite3.OperationalError as exc:  # cannot open, locked, ...: not a verdict on the pages
        result = f"error: {_problem(exc)}"
    except sqlite3.DatabaseError as exc:  # "database disk image is malformed", "file is not a database"
        result = f"error: corrupt ({_problem(exc)})"
    except Exception as exc:
        result = f"error: {_problem(exc)}"
    with _integrity_lock:
        state.result, state.checked, state.thread = result, time.monotonic(), None


def health(version, huey, worker=None):
    """`worker`: app.operations.heartbeat.status(), whether the queue's worker runs (None: not asked)."""
    database = check_database()
    queue, pending = check_queue(huey)
    report = {"database": database, "queue": queue, "queued_tasks": pending, "version": version}
    ok = database == "ok" and queue == "ok"
    if worker is not None:
        report["worker"] = f"error: {worker.reason}" if worker.down else "ok"
        ok = ok and not worker.down
    return {"status": "ok" if ok else "degraded", **report}
