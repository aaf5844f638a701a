"""Writing open and click events fast: a kept connection and a per-process writer.

What made a tracking hit slow (measured in docs/benchmarks.md):

1. The app opens a SQLite connection per request and closes it at the end.
   Opening runs the pragmas; closing the last connection to the file
   checkpoints the WAL and deletes it: about 2 ms a hit together. The hot path
   uses its own handle on the same file (the options of app.db), whose
   per-thread connection stays open for the life of the process.

2. One write transaction per hit, from eight threads in two processes. Each
   BEGIN IMMEDIATE that finds the file locked sleeps in SQLite's busy handler
   (1 ms, 2, 5, 10 ...), so the threads mostly wait; and a transaction costs
   more than the two statements in it. Group commit (hits of concurrent
   requests share a transaction, each request waiting for it) was measured
   and did not help: under the GIL the four threads of a worker rarely overlap,
   so the batches stayed at about one row.

So each process has one writer thread per database. A request appends its row
to a list and is answered at once; the writer writes everything listed every
LOFT_TRACKING_FLUSH_MS milliseconds (default 50), or as soon as MAX_ROWS rows
wait, in one transaction with executemany. With two workers that is about 40
short transactions a second, whatever the traffic.

What this gives up, said plainly: a hit is acknowledged before its row is
committed. A normal stop loses nothing: gunicorn's graceful stop (SIGTERM),
SIGINT/SIGQUIT and a max-requests restart end the interpreter normally, and the
atexit handler stops the writer and writes what is left after every request
thread has finished (a worker past its timeout gets SIGABRT, the same exit,
and SIGKILL only if it is still there at the arbiter's next check). A process
killed outright (SIGKILL, the OOM killer, a segfault) or a power cut loses the
hits of its last flush interval, at most LOFT_TRACKING_FLUSH_MS of traffic (more only if
the database was refusing writes at that moment, see below); set it to 0 to
write each hit in its own transaction before answering, as before.

A failed flush loses nothing either: when the database is locked or cannot be
written (OperationalError) the rows go back to the front of the list and are
tried again a second later; while more than LIMIT rows wait, requests wait for
room instead of being answered. When the batch fails for one bad row (an
IntegrityError), the rows are written one by one: the bad one is logged and
dropped (it can never be written), the others are kept.

In tests (TESTING) each hit is written before the answer, as huey runs
immediately there; tests of the writer itself choose the interval.
"""
import atexit
import logging
import os
import threading
import time

import peewee
from peewee import IntegrityError
from peewee import OperationalError
from peewee import PeeweeException
from peewee import SqliteDatabase

from app import events
from app.db import sqlite_database
from app.db import db

log = logging.getLogger(__name__)

MAX_ROWS = 2000  # rows waiting that start a flush before the interval ends
LIMIT = 50_000  # rows waiting (database unavailable) above which requests wait for room (~25 MB)
RETRY_SECONDS = 1.0  # after a flush that could not write, the next try waits at least this long
EXIT_RETRY_PAUSES = (0, 0.2, 0.5, 1.0, 2.0)  # at exit: the pause before each try to write what is left

OK, BAD, RETRY = "ok", "bad", "retry"


class Recorder:
    """Event rows (and contact activity) for one database: written at once, or buffered.

    A row is (team_id, contact_id, campaign_id, type, at, data_json, active): `at` a datetime
    (converted once, by the column's db_value, in app.db's statements); `active` moves the
    contact's last_activity_at. statements["activity"] is that app.db update_many statement.
    """

    def __init__(self, database, statements, flush_seconds=0.0, max_rows=MAX_ROWS, limit=LIMIT):
        self.database = database
        self.statements = statements
        self.flush_seconds = flush_seconds
        self.max_rows = max_rows
        self.limit = limit
        self.app_database = None  # the app's database this recorder was made for
        self.flushes = 0  # flushes that found rows to write (tests read these)
        self.written = 0
        self.dropped = 0
        self._reset()

    def _reset(self):
        """Fresh state: at creation and in a forked child (the parent's rows stay the parent's)."""
        self._cond = threading.Condition(threading.Lock())
        self._flush_lock = threading.Lock()
        self._rows = []
        self._thread = None
        self._stopping = False
        self._failing = False  # the last flush left rows to retry

    # --- Writing ---------------------------------------------------------------------

    def _execute(self, rows, database):
        active = [(row[4], row[1]) for row in rows if row[6]]
        with peewee.__exception_wrapper__:  # driver errors become peewee's, as in Database.execute_sql
            cursor = database.cursor()
            events.write(cursor, [row[:6] for row in rows])
            if active:
                self.statements["activity"].run(active, cursor)

    def store(self, rows, database=None):
        """Write `rows` (through `database`, else the kept one); one outcome per row: OK,
        BAD (can never be written, logged) or RETRY (the database could not be written now)."""
        if database is None:
            database = self.database
        try:
            with database.atomic():
                self._execute(rows, database)
            return [OK] * len(rows)
        except OperationalError:
            log.warning("could not write %d tracking events now (database locked or not writable)", len(rows),
                        exc_info=True)
            return [RETRY] * len(rows)
        except PeeweeException:
            if len(rows) == 1:
                log.exception("could not record a %s event of contact %s", rows[0][3], rows[0][1])
                return [BAD]
        outcomes = []
        for row in rows:
            try:
                with database.atomic():
                    self._execute([row], database)
                outcomes.append(OK)
            except IntegrityError:
                log.exception("could not record a %s event of contact %s", row[3], row[1])
                outcomes.append(BAD)
            except PeeweeException:
                outcomes.append(RETRY)
        return outcomes

    def submit(self, row):
        """Record one row. Immediate mode: True when it was written. Buffered: True once
        it is listed for the writer (it is written within the flush interval)."""
        if not self.flush_seconds:
            outcome = self.store([row], database=_in_caller_transaction())
            if outcome == [RETRY]:
                log.error("a %s event of contact %s was not recorded", row[3], row[1])
            return outcome == [OK]
        with self._cond:
            if self._thread is None:
                self._start()
            while len(self._rows) >= self.limit:
                self._cond.notify_all()
                self._cond.wait(1.0)
            self._rows.append(row)
            if len(self._rows) >= self.max_rows:
                self._cond.notify_all()
        return True

    def flush(self):
        """Write every listed row now; returns how many were written. Rows that could not
        be written for now are listed again, first."""
        with self._flush_lock:
            with self._cond:
                rows, self._rows = self._rows, []
            if not rows:
                return 0
            try:
                outcomes = self.store(rows)
            except Exception:  # anything unforeseen: the rows are kept, never dropped with the error
                log.exception("could not write %d tracking events now", len(rows))
                outcomes = [RETRY] * len(rows)
            retry = [row for row, outcome in zip(rows, outcomes) if outcome == RETRY]
            if retry:
                log.warning("%d tracking events are kept and tried again in %.0f s", len(retry), RETRY_SECONDS)
                self._fresh_connection()
            written = outcomes.count(OK)
            with self._cond:
                if retry:
                    self._rows[:0] = retry
                self._failing = bool(retry)
                self.flushes += 1
                self.written += written
                self.dropped += outcomes.count(BAD)
                self._cond.notify_all()  # requests waiting for room
            return written

    def _fresh_connection(self):
        """After a write that failed: close this thread's connection, so the next try opens a new one.
        A connection the server dropped (PostgreSQL restarted, its backend terminated) still looks open
        to peewee, and every later flush through it would fail the same way, for the life of the process."""
        try:
            if not self.database.is_closed() and not self.database.in_transaction():
                self.database.close()
        except Exception:  # closing a broken connection may fail too; the next connect() starts afresh
            log.debug("closing the tracking writer's connection failed", exc_info=True)

    # --- The writer thread -----------------------------------------------------------

    def _start(self):
        self._stopping = False
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="loft-tracking-writer", daemon=True)
        self._thread.start()
        _live.add(self)

    def _run(self):
        while True:
            with self._cond:
                # After a failed flush, wait the retry pause even when many rows wait.
                failing = self._failing
                pause = max(self.flush_seconds, RETRY_SECONDS) if failing else self.flush_seconds
                deadline = time.monotonic() + pause
                while not self._stopping and (failing or len(self._rows) < self.max_rows):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._stopping:
                    return
            try:
                self.flush()
            except Exception:  # never let the writer die: the rows stay listed
                log.exception("the tracking writer failed; retrying")

    def close(self, timeout=30.0):
        """Stop the writer and write what is left (at exit). Returns the rows that could
        not be written (logged): zero unless the database stayed unavailable."""
        with self._cond:
            thread, self._stopping = self._thread, True
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        # A database busy for a moment (another process's exit flush holding the same contacts' rows,
        # a deadlock PostgreSQL broke) gets a few short pauses, well inside gunicorn's graceful timeout.
        for pause in EXIT_RETRY_PAUSES:
            time.sleep(pause)
            try:
                self.flush()
            except Exception:
                log.exception("could not write the last tracking events")
            if not self._rows:
                break
        with self._cond:
            self._thread = None
            left = len(self._rows)
        if left:
            log.error("%d tracking events could not be written before exit", left)
        return left


_live = set()  # recorders with a writer thread in this process


@atexit.register
def _close_all():
    # Runs after the interpreter has joined the request threads (gunicorn's pool),
    # so no hit can be listed after this.
    for found in list(_live):
        found.close()
    _live.clear()


def _after_fork():
    for found in list(_recorders.values()):
        found._reset()
    _live.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


_flush_seconds = 0.0


def configure(flush_ms):
    """The flush interval for recorders made from now on (0: write each hit before answering)."""
    global _flush_seconds
    _flush_seconds = max(0, flush_ms) / 1000


_hot_databases = {}
_recorders = {}
_lock = threading.Lock()


def hot_database():
    """The database for the tracking hot path. For a SQLite file: a second handle on the
    same file with the app's options, whose per-thread connection is never closed (the
    app's own closes after every request). Anything else: the app's database."""
    database = db.obj
    if not isinstance(database, SqliteDatabase) or database.database == ":memory:":
        return db
    found = _hot_databases.get(database.database)
    if found is None:
        with _lock:
            found = _hot_databases.get(database.database)
            if found is None:
                if len(_hot_databases) > 16:  # tests make a database per test; never grow without bound
                    _hot_databases.clear()
                found = _hot_databases[database.database] = sqlite_database(database.database)
    return found


def _in_caller_transaction():
    """The app's database when this thread is inside one of its transactions (a task, a test,
    a script), else None. Reads and immediate writes then go through it: the kept connection
    would not see that transaction's rows, and would wait for the write lock it holds."""
    return db if db.obj is not None and db.in_transaction() else None


def reader():
    """The database to read Sends and Links from on the hot path."""
    return _in_caller_transaction() or hot_database()


def recorder(statements):
    """The Recorder of the hot database (one per database and process)."""
    database = hot_database()
    key = (id(database), id(db.obj))
    found = _recorders.get(key)
    if found is None or found.database is not database or found.app_database is not db.obj:
        with _lock:
            found = _recorders.get(key)
            if found is None or found.database is not database or found.app_database is not db.obj:
                if len(_recorders) > 16:
                    _recorders.clear()
                found = _recorders[key] = Recorder(database, statements, flush_seconds=_flush_seconds)
                found.app_database = db.obj
    return found
