"""The database, in one place: a proxy bound by init_db(), the base model, JSONField and IdField,
and every piece of SQL text the app runs (tests/test_structure_sql.py): the executemany and
multi-row statements built from a model's _meta, and the dialect section, which writes the SQLite
and the PostgreSQL spelling wherever the two differ.

SQLite is opened in WAL mode with foreign keys on and lock_type='IMMEDIATE',
so every db.atomic() takes the write lock at BEGIN. A deferred transaction that
reads and then writes gets SQLITE_BUSY at the lock upgrade without waiting for
the busy timeout; IMMEDIATE waits instead, so concurrent writers never see
"database is locked" (measured in ../shared/reference/style.md, section 7).
"""
import contextlib
import functools
import re
import sqlite3
import threading
import time
from urllib.parse import urlparse

import peewee
from peewee import AutoField
from peewee import DatabaseProxy
from peewee import DateTimeField
from peewee import Model
from peewee import NodeList
from peewee import SQL
from peewee import SqliteDatabase
from peewee import fn
from playhouse.db_url import connect
from playhouse.db_url import parseresult_to_dict

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
        if isinstance(_real(db), SqliteDatabase):
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


# --- JSON columns -------------------------------------------------------------------------------
# A column holding one JSON document is a JSONField: code assigns and reads Python objects and
# queries inside a document with field["key"] / field.path("a", "b") (peewee writes SQLite's ->
# and ->> or PostgreSQL's #> and #>> from the same expression). TEXT on SQLite, JSONB on PostgreSQL.

class JSONField(peewee.JSONField):
    """A JSON document column. `empty` (dict, list, or None for any JSON value) is what a new row
    holds and what a stored "" or NULL reads as: the columns were TEXT written by json.dumps before
    they were typed, so old rows read back unchanged and no migration was needed.

    On SQLite the value is bound as the json.dumps text (the same bytes as before, and a plain
    parameter, so executemany can send it); peewee's default would wrap it in json(), a SQL call.
    JSON text where a document belongs ("{...}" assigned by hand) raises TypeError instead of being
    stored as one JSON string."""

    def __init__(self, empty=dict, **kwargs):
        self.empty = empty
        kwargs.setdefault("default", empty)
        self._bind_text = True
        super().__init__(**kwargs)

    def _db_hook(self, database):
        super()._db_hook(database)
        self._bind_text = database is None or isinstance(self._helper, peewee.SqliteJSONMethods)

    def db_value(self, value):
        if (value is None and self.null) or isinstance(value, peewee.Node):
            return value  # None is SQL NULL where the column allows it, else JSON null
        if self.empty in (dict, list) and isinstance(value, str) and value[:1] in ("{", "["):
            raise TypeError(f"{self.model.__name__}.{self.name} takes a {self.empty.__name__}, not JSON text")
        if self._bind_text:
            return self._dumps(value)
        return self._wrap(value)  # psycopg's Jsonb; peewee's own db_value would send None as SQL NULL

    def python_value(self, value):
        # On SQLite "" is an empty TEXT column; psycopg hands JSONB over parsed, where "" is a JSON string.
        if value is None or (value == "" and self._bind_text):
            return self.empty() if callable(self.empty) else self.empty
        return super().python_value(value)


# The largest id a row can have on either stack (PostgreSQL's SERIAL is a 4-byte integer): routes refuse
# anything larger before it reaches a query (app.RowIdConverter).
MAX_ROW_ID = 2**31 - 1


# --- Id counters --------------------------------------------------------------------------------
# Ids leave the box (send ids in the links of delivered mail, contact and list ids in webhook payloads
# and exports), so none may ever be handed out twice, not even after a restore. SQLite tables have
# "id INTEGER PRIMARY KEY AUTOINCREMENT" (migrations/0038_ids_never_reused.py): the highest id ever
# given is kept in sqlite_sequence. PostgreSQL keeps it in each SERIAL column's sequence.

class IdField(AutoField):
    """The id of a table a migration creates: `id = IdField()` in its frozen model. AUTOINCREMENT on
    SQLite, so the id is never handed out again; PostgreSQL's SERIAL never does anyway. A table with
    a plain id fails tests/test_backup.py::test_every_table_with_an_id_never_reuses_it."""

    def ddl(self, ctx):
        node = super().ddl(ctx)
        if isinstance(_real(self.model._meta.database), SqliteDatabase):
            return NodeList((node, SQL("AUTOINCREMENT")))
        return node


def _real(database):
    return database.obj if isinstance(database, DatabaseProxy) else database


def id_tables(database):
    """Names of the tables whose ids come from a counter that never goes back."""
    database = _real(database)
    if isinstance(database, SqliteDatabase):
        return [name for (name,) in database.execute_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%AUTOINCREMENT%' ORDER BY name")]
    return [name for (name,) in database.execute_sql(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND column_name = 'id' AND column_default LIKE %s ORDER BY table_name", ("nextval(%",))]


def id_high_water(database):
    """{table: the highest id it has handed out}: its counter, or a larger id in the table itself."""
    database = _real(database)
    marks = {}
    if isinstance(database, SqliteDatabase):
        tables = [name for (name,) in database.execute_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name IN "
            "(SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c WHERE c.name = 'id' AND c.pk = 1 "
            "AND upper(c.type) = 'INTEGER')")]
        counters = {}
        if database.execute_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
            counters = dict(database.execute_sql("SELECT name, seq FROM sqlite_sequence").fetchall())
        for table in tables:
            highest = database.execute_sql(f'SELECT max("id") FROM "{table}"').fetchone()[0] or 0
            marks[table] = max(highest, counters.get(table) or 0)
        return marks
    for table in id_tables(database):
        last, called = database.execute_sql(
            f"SELECT last_value, is_called FROM {_pg_sequence(database, table)}").fetchone()
        highest = database.execute_sql(f'SELECT max("id") FROM "{table}"').fetchone()[0] or 0
        marks[table] = max(highest, last if called else last - 1)
    return marks


def raise_id_counters(database, floors):
    """Make each table's next id larger than floors[table]; a counter already past it stays."""
    database = _real(database)
    tables = set(id_tables(database))
    with database.atomic():
        for table, floor in sorted(floors.items()):
            if table not in tables:
                continue
            if isinstance(database, SqliteDatabase):
                updated = database.execute_sql("UPDATE sqlite_sequence SET seq = ? WHERE name = ? AND seq < ?",
                                               (floor, table, floor)).rowcount
                if not updated and not database.execute_sql("SELECT 1 FROM sqlite_sequence WHERE name = ?",
                                                            (table,)).fetchone():
                    database.execute_sql("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, floor))
            else:
                sequence = _pg_sequence(database, table)
                database.execute_sql(f"SELECT setval(%s, %s) WHERE %s > (SELECT CASE WHEN is_called THEN last_value "
                                     f"ELSE last_value - 1 END FROM {sequence})", (sequence, floor, floor))


def _pg_sequence(database, table):
    return database.execute_sql("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()[0]


# --- Many rows, one prepared statement ----------------------------------------------------------
# peewee builds the SQL text of an insert_many, and of each update, in Python row by row (about 50 µs
# a row); executemany sends one prepared statement for all the rows, five times faster. The writers
# whose speed is measured use it (docs/benchmarks.md: the send engine's results flush, the tracking
# recorder's group commit). The statement is built here from the model's _meta, table and column
# names quoted, so no other module writes that SQL text and a renamed column cannot leave a stale
# string behind. Datetimes are converted as peewee converts them for any other write, by the field's
# db_value (then the driver's adapter), never by str() or isoformat() at the call site.

class Many:
    """One prepared INSERT or UPDATE for executemany; a row gives the values of `fields` in order."""

    def __init__(self, sql, fields):
        self.sql = sql
        self.fields = tuple(fields)
        self._dates = tuple((i, field.db_value) for i, field in enumerate(self.fields)
                            if isinstance(field, DateTimeField))

    def prepare(self, rows):
        """The rows as they are bound: each datetime column through its field's db_value (about 0.5 µs
        a row with one such column, against some 30 µs for the row's UPDATE itself: measured on 20,000
        sent results of the engine's flush, whose time did not change beyond noise)."""
        rows = rows if isinstance(rows, list) else list(rows)
        for i, convert in self._dates:
            rows = [row[:i] + (convert(row[i]),) + row[i + 1:] for row in rows]
        return rows

    def run(self, rows, cursor=None):
        """Execute for every row of `rows`, on `cursor` (else a new cursor of db), inside the
        caller's transaction. Returns how many rows the database changed. The driver's errors are raised as
        peewee's (IntegrityError, ...), as every other statement's are."""
        rows = self.prepare(rows)
        if not rows:
            return 0
        with peewee.__exception_wrapper__:
            cursor = cursor if cursor is not None else db.cursor()
            cursor.executemany(self.sql, rows)
            return cursor.rowcount


_many = {}


def _cached(key, build):
    key = (db.param,) + key
    found = _many.get(key)
    if found is None:
        found = _many[key] = build(db.param)
    return found


def _quoted(field):
    return f'"{field.column_name}"'


def _table(fields):
    models = {field.model for field in fields}
    if len(models) != 1:
        raise ValueError("the fields of one statement belong to one model")
    return f'"{models.pop()._meta.table_name}"'


def insert_many(fields, ignore_conflicts=False):
    """INSERT INTO "table" ("a", "b") VALUES (?, ?) for `fields` of one model (with ON CONFLICT DO
    NOTHING when `ignore_conflicts`: the same words on SQLite and PostgreSQL)."""
    fields = tuple(fields)

    def build(param):
        sql = (f"INSERT INTO {_table(fields)} ({', '.join(_quoted(f) for f in fields)}) "
               f"VALUES ({', '.join([param] * len(fields))})")
        return Many(sql + (" ON CONFLICT DO NOTHING" if ignore_conflicts else ""), fields)

    return _cached(("insert", ignore_conflicts) + tuple((f.model.__name__, f.name) for f in fields), build)


def update_many(fields, where, fixed=None):
    """UPDATE "table" SET "a" = ?, "b" = ? WHERE "key" = ?: a row gives the values of `fields`,
    then the value of `where` (usually the primary key) that picks the row to change. `fixed`
    ({field: value}, a str, int or None) sets the same value in every row, written into the statement
    so the rows need not carry it (a status, NULL)."""
    fields, fixed = tuple(fields), tuple((fixed or {}).items())

    def build(param):
        assignments = [f"{_quoted(f)} = {param}" for f in fields]
        assignments += [f"{_quoted(f)} = {_literal(f.db_value(value))}" for f, value in fixed]
        return Many(f"UPDATE {_table(fields + (where,) + tuple(f for f, _ in fixed))} "
                    f"SET {', '.join(assignments)} WHERE {_quoted(where)} = {param}", fields + (where,))

    return _cached(("update",) + tuple((f.model.__name__, f.name) for f in fields + (where,))
                   + tuple((f.name, value) for f, value in fixed), build)


def add_many(counters, where, fields=()):
    """UPDATE "table" SET "a" = "a" + ?, "c" = ? WHERE "key" = ?: a row gives the amounts to add to
    `counters`, then the values of `fields`, then the value of `where`. The addition happens in the
    statement, so concurrent writers' amounts add up; built once, where peewee compiles an update
    expression anew for every call (about 90 µs, on each of the send engine's result flushes)."""
    counters, fields = tuple(counters), tuple(fields)

    def build(param):
        assignments = [f"{_quoted(f)} = {_quoted(f)} + {param}" for f in counters]
        assignments += [f"{_quoted(f)} = {param}" for f in fields]
        return Many(f"UPDATE {_table(counters + fields + (where,))} SET {', '.join(assignments)} "
                    f"WHERE {_quoted(where)} = {param}", counters + fields + (where,))

    return _cached(("add",) + tuple((f.model.__name__, f.name) for f in counters + fields + (where,)), build)


def upsert_add(keys, counter):
    """INSERT INTO "table" ("k1", "k2", "n") VALUES (?, ?, ?) ON CONFLICT ("k1", "k2") DO UPDATE SET
    "n" = "table"."n" + excluded."n": a row gives the values of `keys` (a unique index), then the
    amount; a new row starts at the amount and an existing one adds it (the same words on SQLite and
    PostgreSQL)."""
    keys = tuple(keys)
    columns = keys + (counter,)

    def build(param):
        table = _table(columns)
        sql = (f"INSERT INTO {table} ({', '.join(_quoted(f) for f in columns)}) "
               f"VALUES ({', '.join([param] * len(columns))}) "
               f"ON CONFLICT ({', '.join(_quoted(f) for f in keys)}) "
               f"DO UPDATE SET {_quoted(counter)} = {table}.{_quoted(counter)} + excluded.{_quoted(counter)}")
        return Many(sql, columns)

    return _cached(("upsert_add",) + tuple((f.model.__name__, f.name) for f in columns), build)


def update_rows(fields, where):
    """update_many's UPDATE for a batch of rows given together (an import's chunk): the same rows and
    run(rows). On SQLite it is update_many: one prepared statement run per row is the fastest there. On
    PostgreSQL executemany still runs a statement per row (0.3-0.5 s for 5,000 rows, measured), so the
    rows go as one array a column: UPDATE ... FROM unnest(...), one statement."""
    if is_sqlite():
        return update_many(fields, where)
    return _update_arrays(tuple(fields), where)


def insert_rows(fields, ignore_conflicts=False):
    """insert_many's INSERT for a batch of rows given together (a welcome burst's runs, visits and mail rows): the
    same rows and run(rows). On SQLite it is insert_many. On PostgreSQL executemany still runs a statement per row
    (pipelined, yet about 270 µs a row of automation_run with its foreign keys, measured), so the rows go as one
    array a column: INSERT ... SELECT FROM unnest(...), one statement."""
    if is_sqlite():
        return insert_many(fields, ignore_conflicts)
    return _insert_row_arrays(tuple(fields), ignore_conflicts)


class _Arrays(Many):
    """One statement whose parameters are the rows' columns, each as one array (PostgreSQL's unnest)."""

    def run(self, rows, cursor=None):
        rows = self.prepare(rows)
        if not rows:
            return 0
        with peewee.__exception_wrapper__:
            cursor = cursor if cursor is not None else db.cursor()
            cursor.execute(self.sql, [list(column) for column in zip(*rows)])
            return cursor.rowcount


@functools.lru_cache(maxsize=16)
def _insert_row_arrays(fields, ignore_conflicts):
    types = _array_types()
    names = [f"c{i}" for i in range(len(fields))]
    arrays = ", ".join(f"{db.param}::{types[f.field_type]}[]" for f in fields)
    sql = (f"INSERT INTO {_table(fields)} ({', '.join(_quoted(f) for f in fields)}) "
           f"SELECT {', '.join(names)} FROM unnest({arrays}) AS u ({', '.join(names)})")
    return _Arrays(sql + (" ON CONFLICT DO NOTHING" if ignore_conflicts else ""), fields)


@functools.lru_cache(maxsize=16)
def _update_arrays(fields, where):
    types = _array_types()
    columns = fields + (where,)
    names = [f"c{i}" for i in range(len(columns))]
    table = _table(columns)
    arrays = ", ".join(f"{db.param}::{types[f.field_type]}[]" for f in columns)
    assignments = ", ".join(f"{_quoted(f)} = u.{name}" for f, name in zip(fields, names))
    return _Arrays(f"UPDATE {table} SET {assignments} FROM unnest({arrays}) AS u ({', '.join(names)}) "
                        f"WHERE {table}.{_quoted(where)} = u.{names[-1]}", columns)


def _literal(value):
    """A constant of the code (never a user's value) as SQL text."""
    if value is None:
        return "NULL"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"a fixed value is a str, an int or None, not {value!r}")
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


# --- Multi-row statements ----------------------------------------------------------------------
# The import writes thousands of rows per statement: one INSERT with many VALUES tuples (faster than
# executemany on SQLite, measured in docs/benchmarks.md) and lookups with long IN lists. Built here
# from the model's _meta like the executemany statements above; one text per row count, the last
# few kept (a chunk's last batch is shorter).

class Statement:
    """SQL text built here; run(params) executes it on the app's database and returns the cursor."""

    def __init__(self, sql):
        self.sql = sql

    def run(self, params=()):
        return db.execute_sql(self.sql, params)


def insert_values(fields, rows, fixed=None, conflict=(), returning=()):
    """INSERT INTO "t" ("a", "b", <fixed>) VALUES (?, ?, 'x'), ... for `rows` rows: a row's parameters
    are the values of `fields` in order (run with one flat list); `fixed` ({field: str or int}) is
    written into every tuple; `conflict` (the fields of a unique index) adds ON CONFLICT (...) DO
    NOTHING and `returning` adds RETURNING: the same words on SQLite (3.35+) and PostgreSQL.

    On PostgreSQL the same rows go as one array a column, INSERT ... SELECT FROM unnest(...): the
    server plans a long VALUES list in more than linear time (measured: 3 ms at 800 rows, 100-185 ms at
    4,600, plus about half a second to parse and bind its 32,000 parameters), while the arrays are
    seven parameters whatever the number of rows."""
    fixed = tuple((fixed or {}).items())
    if not is_sqlite():
        return _insert_arrays(tuple(fields), fixed, tuple(conflict), tuple(returning))
    return _insert_values(db.param, tuple(fields), rows, fixed, tuple(conflict), tuple(returning))


def _array_types():
    """peewee field type -> the column type an array parameter is cast to (an id's serial is a bigint)."""
    return {**_real(db).get_context_options()["field_types"], "AUTO": "BIGINT", "BIGAUTO": "BIGINT"}


class _ArrayStatement(Statement):
    """An INSERT ... SELECT FROM unnest(...): run(params) takes the rows' flat parameters, as a VALUES
    statement does, and sends them as one list per column."""

    def __init__(self, sql, width):
        super().__init__(sql)
        self.width = width

    def run(self, params=()):
        params, width = list(params), self.width
        return db.execute_sql(self.sql, [params[i::width] for i in range(width)])


@functools.lru_cache(maxsize=16)
def _insert_arrays(fields, fixed, conflict, returning):
    types = _array_types()
    names = [f"c{i}" for i in range(len(fields))]
    arrays = ", ".join(f"{db.param}::{types[f.field_type]}[]" for f in fields)
    columns = fields + tuple(f for f, _ in fixed)
    picked = names + [_literal(f.db_value(v)) for f, v in fixed]
    sql = (f"INSERT INTO {_table(columns)} ({', '.join(_quoted(f) for f in columns)}) "
           f"SELECT {', '.join(picked)} FROM unnest({arrays}) AS u ({', '.join(names)})")
    if conflict:
        sql += f" ON CONFLICT ({', '.join(_quoted(f) for f in conflict)}) DO NOTHING"
    if returning:
        sql += " RETURNING " + ", ".join(_quoted(f) for f in returning)
    return _ArrayStatement(sql, len(fields))


@functools.lru_cache(maxsize=16)
def _insert_values(param, fields, rows, fixed, conflict, returning):
    columns = fields + tuple(f for f, _ in fixed)
    one = "(" + ", ".join([param] * len(fields) + [_literal(f.db_value(v)) for f, v in fixed]) + ")"
    sql = (f"INSERT INTO {_table(columns)} ({', '.join(_quoted(f) for f in columns)}) "
           f"VALUES {', '.join([one] * rows)}")
    if conflict:
        sql += f" ON CONFLICT ({', '.join(_quoted(f) for f in conflict)}) DO NOTHING"
    if returning:
        sql += " RETURNING " + ", ".join(_quoted(f) for f in returning)
    return Statement(sql)


def select_among(fields, equal, among, count):
    """SELECT "a", "b" FROM "t" WHERE "equal" = ? AND "among" IN (?, ... `count` times): run with
    [the equal value] + the `count` values."""
    return _select_among(db.param, tuple(fields), equal, among, count)


@functools.lru_cache(maxsize=16)
def _select_among(param, fields, equal, among, count):
    return Statement(f"SELECT {', '.join(_quoted(f) for f in fields)} FROM {_table(fields + (equal, among))} "
                     f"WHERE {_quoted(equal)} = {param} AND {_quoted(among)} IN ({', '.join([param] * count)})")


class IdList(peewee.Node):
    """Ids for `column << IdList(ids)`, written as one "(?, ?, ...)" with the ids as its parameters.

    Given a plain list, peewee makes a node for each id and compiles them one by one: 1.7 ms for the
    500 ids of a claim, against 0.12 ms here. The ids go to the driver as they are (ints)."""

    def __init__(self, ids):
        self.ids = list(ids)

    def __sql__(self, ctx):
        if not self.ids:
            return ctx.literal("(NULL)")  # IN (NULL) matches nothing, as an empty list does
        ctx.literal("(" + ", ".join([ctx.state.param or "?"] * len(self.ids)) + ")")
        ctx._values.extend(self.ids)
        return ctx


def plain_rows(query):
    """The rows of a SELECT as the driver returns them (tuples), without peewee's conversion of each value: for big
    reads of ids, numbers and text, where that conversion was most of the cost (about 4 us a row of 1,000 claimed runs
    and their contacts, a fifth of a welcome burst's tick). Dates, JSON and enums come back as stored."""
    return db.execute_sql(*query.sql()).fetchall()


# --- Dialect: what SQLite and PostgreSQL spell differently ---------------------------------------
# SQL text is written in this module only (tests/test_structure_sql.py). Where the two databases
# differ, each function writes both spellings and picks by the bound database, so the PostgreSQL
# port changes the engine URL, not the callers. Report statements that are the same on both
# (INSERT ... SELECT ... GROUP BY, ON CONFLICT ... DO UPDATE with excluded.) call the helpers below
# for the parts that are not.

_KEY = re.compile(r"[a-z_][a-z0-9_]{0,39}")


def is_sqlite():
    return isinstance(_real(db), SqliteDatabase)


def everything():
    """A condition true for every row."""
    return SQL("1 = 1")


def nothing():
    """A condition true for no row (SQLite would take a bare 0; PostgreSQL wants a boolean)."""
    return SQL("1 = 0")


def server_default(value):
    """DEFAULT <int> (or DEFAULT '<text>' for a str) in a column's DDL (a model's or a migration's
    constraints=[...]), for rows that raw INSERTs write without the column."""
    if isinstance(value, str):
        return SQL("DEFAULT '{}'".format(value.replace("'", "''")))
    return SQL(f"DEFAULT {int(value)}")


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


def refresh_statistics(*models):
    """Bring the planner's statistics of these tables up to date before a big join over them.

    PostgreSQL plans from statistics that autovacuum refreshes only some time after a big write: a
    campaign frozen right after an import of 20,000 contacts joined contacts and subscriptions as if
    both were nearly empty (a nested loop: 42 s, 0.5 s once analysed). ANALYZE reads a sample of
    30,000 rows per table, a fraction of a second at a million. SQLite's planner needs no statistics
    for these lookups by index: nothing to do."""
    if not is_sqlite():
        for model in models:
            db.execute_sql(f'ANALYZE "{model._meta.table_name}"')


def _key(key):
    if not _KEY.fullmatch(key):
        raise ValueError(f"not a JSON key of ours: {key!r}")
    return key


def json_value(column, key):
    """SQL for the scalar at `key` of the JSON column `column` (text such as "e.data"), for raw
    statements (peewee queries use JSONField paths instead). SQLite: json_extract(e.data, '$.key'),
    which gives numbers as numbers and true/false as 1/0. PostgreSQL (JSONB): e.data ->> 'key', text."""
    if is_sqlite():
        return f"json_extract({column}, '$.{_key(key)}')"
    return f"({column} ->> '{_key(key)}')"


def json_int(column, key):
    """json_value as an integer (an id); NULL when the key is missing."""
    if is_sqlite():
        return json_value(column, key)
    return f"({column} ->> '{_key(key)}')::bigint"


def json_flag(column, key):
    """1 when the JSON key holds true, else 0 (missing, false or null)."""
    if is_sqlite():
        return f"coalesce({json_value(column, key)}, 0)"
    return f"coalesce(({column} ->> '{_key(key)}')::boolean::int, 0)"


def day_text(column):
    """A timestamp column as its UTC day, 'YYYY-MM-DD'. SQLite stores the text, so a prefix;
    PostgreSQL: to_char."""
    return f"substr({column}, 1, 10)" if is_sqlite() else f"to_char({column}, 'YYYY-MM-DD')"


def hour_text(column):
    """A timestamp column as its UTC hour, 'YYYY-MM-DD HH'."""
    return f"substr({column}, 1, 13)" if is_sqlite() else f"to_char({column}, 'YYYY-MM-DD HH24')"


def month_of(field):
    """A timestamp field as its UTC month 'YYYY-MM', a peewee expression to select and group by.
    SQLite stores the text, so a prefix; PostgreSQL: to_char, its format written into the text (as a
    parameter the SELECT's and the GROUP BY's would be two placeholders, which PostgreSQL takes for
    two different expressions)."""
    return fn.substr(field, 1, 7) if is_sqlite() else fn.to_char(field, SQL("'YYYY-MM'"))


def email_domain(column):
    """The lower-cased part after the @ of an address column. PostgreSQL: split_part."""
    if is_sqlite():
        return f"lower(substr({column}, instr({column}, '@') + 1))"
    return f"lower(split_part({column}, '@', 2))"


def count_if(condition):
    """SQL counting the rows of a group where `condition` (SQL text) holds. SQLite adds up the
    comparison (true is 1); PostgreSQL has no sum of booleans: count(*) FILTER (WHERE ...)."""
    return f"sum({condition})" if is_sqlite() else f"count(*) FILTER (WHERE {condition})"


def count_rows():
    """COUNT(*) for peewee queries: a count of no column, which an index that covers the rest of the query answers
    alone (an index-only scan on PostgreSQL; COUNT(id) there reads every row of the table)."""
    return fn.COUNT(SQL("*"))


def count_where(condition):
    """count_if for peewee queries: `condition` is a peewee expression. Like SUM, NULL over no rows."""
    return fn.SUM(condition) if is_sqlite() else fn.COUNT(SQL("*")).filter(condition)


def empty_table(table):
    """Remove every row of a scratch table that is filled and emptied over and over (a temp table).
    SQLite's DELETE without WHERE drops the pages at once. PostgreSQL's leaves every row behind as
    a dead version that no autovacuum ever removes from a temp table: the report aggregator's batch
    table grew by 20,000 of them a batch, and its batches took 0.8 s, then 4 s after 40 (1,000,000
    events). TRUNCATE gives the table fresh, empty storage."""
    db.execute_sql(f'DELETE FROM "{table}"' if is_sqlite() else f'TRUNCATE "{table}"')


def upsert_adding(table, keys, columns, select_sql, params=()):
    """INSERT INTO table (keys + columns) <select_sql> ON CONFLICT (keys) DO UPDATE SET c = table.c +
    excluded.c: add counts into an aggregate row, creating it when missing. The same words on SQLite
    (3.24+) and PostgreSQL (9.5+); SQLite parses it only when the SELECT has a WHERE or GROUP BY."""
    names = ", ".join(keys + columns)
    adds = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in columns)
    db.execute_sql(f"INSERT INTO {table} ({names}) {select_sql} "
                   f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {adds}", params)


def upsert_adding_rows(table, keys, columns, rows):
    """upsert_adding for rows given in Python (keys then columns in each), one executemany."""
    if not rows:
        return
    names = keys + columns
    adds = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in columns)
    db.cursor().executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join([db.param] * len(names))}) "
                            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {adds}", rows)


def max_id(table):
    """The highest id in `table` now (0 when empty)."""
    return db.execute_sql(f'SELECT max(id) FROM "{table}"').fetchone()[0] or 0


# Id cursors. A batch reader (the report aggregator, the webhook dispatcher) keeps the last id it
# has read and next reads the rows above it, so it must never pass an id that a transaction still
# running may yet commit. On SQLite that cannot happen: a writer takes the write lock at BEGIN
# (IMMEDIATE), so ids are handed out and committed one transaction after another, in id order.
# On PostgreSQL a sequence hands out ids outside any lock: a transaction that took id 10 may
# commit after another that took id 11, and a reader that moved past 11 would skip 10 for good.
# So the reader stops below the first row written by a transaction no older than the oldest one
# still running in this database, compared by age with the row's xmin: that older transaction may
# hold a smaller id it has yet to commit. "Running" covers both kinds in pg_stat_activity: one that
# has written (backend_xid) and one in the middle of a statement (backend_xmin, its snapshot), which
# closes the moment between an INSERT drawing its id and getting its transaction id: any row whose
# id was drawn after that INSERT's snapshot was taken comes from a transaction no older than the
# snapshot's xmin. A transaction that has its transaction id is counted by that id alone: every row
# it writes carries it, while its snapshot's xmin may be far older than anything in this database
# (the oldest transaction of the whole server, other databases included) and would only hold the
# readers back for nothing. Rows behind the mark wait for the next run; nothing is skipped or read twice.
# The price is a lag: a long statement or transaction in the database holds the readers back until
# it ends. The backend list is read fresh (pg_stat_clear_snapshot): PostgreSQL otherwise keeps the
# first one a transaction saw.

_OLDEST_RUNNING = ("SELECT max(coalesce(age(backend_xid), age(backend_xmin))) AS xid_age FROM pg_stat_activity "
                   "WHERE datname = current_database() AND backend_type = 'client backend' "
                   "AND pid <> pg_backend_pid()")


def _fresh_activity():
    db.execute_sql("SELECT pg_stat_clear_snapshot()")


def id_window_end(table, after, limit):
    """The id cursor of batch readers: the highest of the next `limit` ids above `after` in `table`
    that no running transaction can still precede, or None when there are none (see above)."""
    p = db.param
    window = f'SELECT id FROM "{table}" WHERE id > {p} ORDER BY id LIMIT {p}'
    if is_sqlite():
        return db.execute_sql(f"SELECT max(id) FROM ({window}) AS window_ids", (after, limit)).fetchone()[0]
    window = f'SELECT id, age(xmin) AS age FROM "{table}" WHERE id > {p} ORDER BY id LIMIT {p}'
    _fresh_activity()
    return db.execute_sql(
        f"WITH window_ids AS ({window}), oldest AS ({_OLDEST_RUNNING}) "
        "SELECT max(id) FROM window_ids WHERE id < coalesce((SELECT min(id) FROM window_ids, oldest "
        "WHERE window_ids.age <= oldest.xid_age), (SELECT max(id) + 1 FROM window_ids))", (after, limit)).fetchone()[0]


def settled_max_id(table, after=0):
    """The highest id in `table` that no running transaction can still precede (max_id on SQLite),
    and at least `after`: how far a reader that skips what it finds may move its cursor."""
    if is_sqlite():
        return max(max_id(table), after)
    p = db.param
    first_unsafe = f'SELECT min(id) FROM "{table}", oldest WHERE id > {p} AND age(xmin) <= oldest.xid_age'
    _fresh_activity()
    highest = db.execute_sql(
        f'WITH oldest AS ({_OLDEST_RUNNING}) SELECT max(id) FROM "{table}" '
        f'WHERE id < coalesce(({first_unsafe}), (SELECT max(id) + 1 FROM "{table}"))', (after,)).fetchone()[0]
    return max(highest or 0, after)


# --- SQLite files: backups and the health check -------------------------------------------------
# These open a database file with the sqlite3 module (a backup copy, or the live file from a health
# probe). PostgreSQL has no file to copy or check: pg_dump and pg_restore play these parts.

def sqlite_check(connection, quick=False, limit=20):
    """The rows of PRAGMA integrity_check (quick_check when `quick`) on an open sqlite3 connection:
    ["ok"] when the file is sound."""
    pragma = "quick_check" if quick else "integrity_check"
    return [row[0] for row in connection.execute(f"PRAGMA {pragma}({int(limit)})")]


def sqlite_single_file(connection):
    """Leave no -wal file beside a copied database: one file says it all."""
    connection.execute("PRAGMA journal_mode=DELETE")


def sqlite_migration_level(connection):
    """The last migration applied in the database of an open sqlite3 connection ('' without any);
    sqlite3.OperationalError when it has no schema_migration table."""
    row = connection.execute("SELECT name FROM schema_migration ORDER BY name DESC LIMIT 1").fetchone()
    return row[0] if row else ""


# --- Statements built once ----------------------------------------------------------------------
# A hot path (the tracking pixel: thousands of requests a second, docs/benchmarks.md) runs the same
# query per request; building it with peewee each time costs more than running it. peewee writes
# the SQL once, for the bound database, and the request runs that text with its own values.

def statement(query):
    """The SQL text of a peewee query, its values left as placeholders in the order they appear.
    Build the query with stand-in values (0) and run the text with first_row(text, real values)."""
    return query.sql()[0]


def first_row(text, params, database=None):
    """The first row (a tuple, or None) of a statement() text run with `params` on `database`
    (default: the app's)."""
    return (database or db).execute_sql(text, params).fetchone()


def copy_rows(database, table, columns, rows):
    """Append `rows` (tuples of column values as the fields' db_value gives them) to `table` of the
    PostgreSQL `database` with COPY FROM STDIN, in the connection's current transaction: one stream
    instead of a statement per batch, which is what makes `flask db copy-to` fast."""
    names = ", ".join(f'"{column}"' for column in columns)
    with peewee.__exception_wrapper__:  # psycopg's errors as peewee's, like every other statement's
        with database.cursor().copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(row)


# --- Claiming rows among several workers ---------------------------------------------------------

def locked(query):
    """The SELECT that opens a transaction serialised with the others that lock the same row, held
    until the transaction ends. On PostgreSQL FOR NO KEY UPDATE: it waits for another lock of the row
    but not for transactions writing rows that reference it (each takes a KEY SHARE lock on it), so
    e.g. recording sends through an SMTP account never waits for a run taking its permits. SQLite
    needs nothing: the transaction already holds the database's write lock from BEGIN (lock_type
    IMMEDIATE above)."""
    if is_sqlite():
        return query
    return query.for_update("FOR NO KEY UPDATE")


def skip_locked(query):
    """The SELECT of a claim: on PostgreSQL it locks the rows it returns and skips rows another
    worker's open claim has locked (FOR UPDATE SKIP LOCKED), so concurrent claims never wait on or
    take the same rows. SQLite has no row locks: its claims run one at a time anyway, because every
    transaction takes the write lock at BEGIN (lock_type IMMEDIATE above)."""
    if is_sqlite():
        return query
    return query.for_update(skip_locked=True)


def leave_room_for_updates(database, table, percent):
    """Fill `table`'s pages only to `percent` on PostgreSQL, for a table whose rows are updated in place often
    (an automation run's lease is set and cleared every time the scheduler claims it). An UPDATE that changes no
    indexed column and finds room on the row's own page writes a heap-only tuple: no index is touched. With full
    pages (PostgreSQL's default fill factor of 100) every lease wrote the row's entries into all of its indexes.
    Only pages written from now on leave the room; VACUUM FULL rewrites old ones. SQLite updates rows in place and
    has no such setting."""
    if isinstance(_real(database), SqliteDatabase):
        return
    database.execute_sql(f'ALTER TABLE "{table}" SET (fillfactor = {int(percent)})')


def claimed_among(field, subquery):
    """`field IN (subquery)` where the subquery is small and should run once, before the outer query: the
    ids a skip_locked claim picked, the live automations. PostgreSQL would plan such an IN as a semi-join
    (a hash join scanning the whole table, or a nested loop through another index: 300 ms a claim at a
    million automation runs, docs/benchmarks.md); = ANY(ARRAY(subquery)) runs it once as an InitPlan and
    leaves the outer query its own index."""
    if is_sqlite():
        return field.in_(subquery)
    return field == fn.ANY(fn.ARRAY(subquery))
