"""The connection: the proxy every model and query goes through (bound by init_db), how SQLite is opened (WAL,
foreign keys, IMMEDIATE transactions that take the write lock within a millisecond of its release), how a web
thread keeps its connection between requests, the base model, and the transaction helpers (fair_write).

SQLite is opened in WAL mode with foreign keys on and lock_type='IMMEDIATE', so every db.atomic() takes the write
lock at BEGIN. A deferred transaction that reads and then writes gets SQLITE_BUSY at the lock upgrade without
waiting for the busy timeout; IMMEDIATE waits instead, so concurrent writers never see "database is locked"
(measured in ../shared/reference/style.md, section 7)."""
import contextlib
import sqlite3
import threading
import time
from urllib.parse import urlparse

import peewee
from peewee import DatabaseProxy
from peewee import Model
from peewee import SqliteDatabase
from playhouse.db_url import connect
from playhouse.db_url import parseresult_to_dict


db = DatabaseProxy()

db = DatabaseProxy()


SQLITE_OPTIONS = dict(
    pragmas={"journal_mode": "wal", "foreign_keys": 1, "cache_size": -64000,
             "mmap_size": 268_435_456,  # big reads skip a copy: segment counts, docs/benchmarks.md
             "synchronous": "normal",
             # Web connections stay open (release_db), so a last close seldom deletes the WAL: after a
             # checkpoint, a WAL that a big write grew is cut back to this size.
             "journal_size_limit": 67_108_864},
    timeout=10,
    lock_type="IMMEDIATE",
)


# A writer waiting for SQLite's write lock at BEGIN tries again after this long, doubling up to the second figure.
WRITE_LOCK_POLL = (0.0002, 0.001)  # seconds


class PromptSqliteDatabase(SqliteDatabase):
    """SQLite whose transactions take the write lock within a millisecond of its release.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms between tries, so a writer that
    finds the lock taken while another writes in bursts (a tick's batches, an import's chunks) keeps missing the
    short moments it is free. Measured (two processes, 5 ms transactions 0.5 ms apart, a small transaction every
    10 ms beside them): the small one waited 195 ms on average with SQLite's handler, 3.9 ms trying every 0.2-1 ms.
    So BEGIN is tried with no busy wait, and tried again here every 0.2-1 ms until the connection's busy_timeout has
    passed (then "database is locked", as before). Statements outside a transaction keep SQLite's handler."""

    def begin(self, lock_type=None):
        lock_type = lock_type or self._lock_type
        cursor = self.cursor()
        with peewee.__exception_wrapper__:
            (timeout_ms,) = cursor.execute("PRAGMA busy_timeout").fetchone()
            cursor.execute("PRAGMA busy_timeout = 0")
            try:
                deadline, pause = time.monotonic() + timeout_ms / 1000, WRITE_LOCK_POLL[0]
                while True:
                    try:
                        cursor.execute(f"BEGIN {lock_type}" if lock_type else "BEGIN")
                        return
                    except sqlite3.OperationalError as exc:
                        if not _busy(exc) or time.monotonic() >= deadline:
                            raise
                    time.sleep(pause)
                    pause = min(pause * 2, WRITE_LOCK_POLL[1])
            finally:
                cursor.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")


def _busy(error):
    """The write lock is taken (SQLITE_BUSY, whatever its extended code)."""
    code = getattr(error, "sqlite_errorcode", None)
    return code & 0xFF == sqlite3.SQLITE_BUSY if code is not None else "locked" in str(error)


def sqlite_database(path, **options):
    """A SQLite database at `path` with the app's options (and `options` on top)."""
    return PromptSqliteDatabase(path, **dict(SQLITE_OPTIONS, **options))


def open_database(url):
    """The database at `url` (sqlite:///path or postgresql://...), not bound to the app's proxy: what
    `flask db copy-to` writes into."""
    if urlparse(url).scheme == "sqlite":
        return sqlite_database(parseresult_to_dict(urlparse(url))["database"])
    return connect(url)


def init_db(url):
    """Bind the proxy to the database at `url` (sqlite:///path or postgresql://...)."""
    database = open_database(url)
    db.initialize(database)
    return database


def close_db(exc=None):
    """Close the calling thread's connection: the end of an app context outside a request (a task, a
    CLI command, a worker thread that comes and goes)."""
    if not db.is_closed():
        db.close()


# --- A web thread's connection ------------------------------------------------------------------
# A request leaves its thread's connection open for the thread's next request instead of closing it.
# On SQLite, closing the last connection to a file checkpoints the WAL into the database and deletes
# the -wal and -shm files, and every open runs the pragmas above and parses the schema again: together
# more than the rest of an API read (docs/benchmarks.md, "GET /api/v1/contacts/{id}"). peewee keeps a
# connection per thread, so gunicorn's threads never share one, and nothing of a request reaches the
# next: a transaction left open is rolled back, and a connection that is broken (PostgreSQL restarted,
# the network dropped) or older than KEEP_CONNECTION_SECONDS is closed, so the next request opens a new
# one. The WAL is then checkpointed by SQLite's automatic checkpoint as commits grow it past 1,000
# pages (wal_autocheckpoint), as it already was in the workers, whose connections stay open too.
# A SQLite cursor read only partly holds its read snapshot until the cursor is freed, so a cursor that
# outlived its request would show the next one stale data. A request's cursors die with its frames; a
# request that ended in an unhandled error closes its connection, since its traceback may keep them.
# Everything that wants its connection closed still calls close_db or db.close() (tests swapping
# databases, `flask db restore` before it replaces the files, threads that end).

KEEP_CONNECTION_SECONDS = 300


_opened = threading.local()  # the thread's kept connection and when it was first kept


def release_db(exc=None):
    """The end of a web request: keep the thread's connection for its next request when it is clean and
    young enough, else close it (see above)."""
    if db.is_closed():
        return
    connection = db.connection()
    now = time.monotonic()
    if getattr(_opened, "connection", None) is not connection:
        _opened.connection, _opened.since = connection, now
    if (exc is not None or db.in_transaction() or now - _opened.since > KEEP_CONNECTION_SECONDS
            or not _reusable(connection)):
        _opened.connection = None
        db.close()


def _reusable(connection):
    """True when the connection is usable as it is, after rolling back a transaction left open (begun
    outside db.atomic, which peewee would have seen); False when it is broken or busy."""
    try:
        if isinstance(real_database(db), SqliteDatabase):
            if connection.in_transaction:
                connection.rollback()
            return True
        if connection.closed:
            return False
        status = connection.info.transaction_status.name  # psycopg's IDLE, ACTIVE, INTRANS, INERROR, UNKNOWN
        if status in ("INTRANS", "INERROR"):
            connection.rollback()
            return True
        return status == "IDLE"
    except Exception:  # a connection that cannot even say or roll back is not used again
        return False


class BaseModel(Model):
    class Meta:
        database = db
        legacy_table_names = False  # SendLog -> send_log


# --- Which database is bound ---------------------------------------------------------------------

def real_database(database):
    """The database behind `database` (the proxy's bound one, or itself)."""
    return database.obj if isinstance(database, DatabaseProxy) else database


def is_sqlite():
    """Is the app's database SQLite (else PostgreSQL)?"""
    return isinstance(real_database(db), SqliteDatabase)


# --- Transactions and tuning ----------------------------------------------------------------------

def ping():
    """One round trip to the database (SELECT 1 on both); raises when it does not answer."""
    db.execute_sql("SELECT 1").fetchone()


def connection_tuning(cache_kb, busy_ms):
    """Tune the calling thread's connection: page cache and lock wait. SQLite: PRAGMA cache_size and
    busy_timeout. PostgreSQL has neither per connection (shared_buffers, and lock_timeout, which
    fails instead of waiting): nothing to do."""
    if is_sqlite():
        db.execute_sql(f"PRAGMA cache_size = -{int(cache_kb)}")
        db.execute_sql(f"PRAGMA busy_timeout = {int(busy_ms)}")


FAIR_PAUSE_LIMIT = 0.05  # seconds: a fair_write's pause after its commit is as long as it held the lock, up to this


@contextlib.contextmanager
def fair_write():
    """db.atomic() for a writer that writes again at once (a burst's batches, one after another): on SQLite, after
    the commit it pauses for as long as it held the write lock (at most FAIR_PAUSE_LIMIT), so the other writers get
    their turn. SQLite's writers do not queue: one that finds the lock taken sleeps 1, 2, 5, 10, ... ms between
    tries, and a writer that begins again a millisecond or two after its commit starves it. Measured (two
    processes, 5 ms transactions back to back, a small write every 10 ms beside them): the small write waited 84 ms
    on average with 0.5 ms between the transactions, 134 ms with 2 ms, 1 ms with 5 ms. During a welcome burst the
    sending engine's results are that small writer: it sent a quarter as fast while the ticks ran. Inside an outer
    transaction there is no pause (the lock is still held); PostgreSQL locks rows, not the database: no pause."""
    if db.in_transaction() or not is_sqlite():
        with db.atomic():
            yield
        return
    started = time.monotonic()
    with db.atomic():
        yield
    time.sleep(min(time.monotonic() - started, FAIR_PAUSE_LIMIT))
