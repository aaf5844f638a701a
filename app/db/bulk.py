"""Many rows at once: one prepared statement for executemany (Many: insert_rows, update_rows, ...), one
statement of many VALUES or arrays (insert_values, select_among), ids for a long IN list (IdList), and rows read as
the driver returns them (plain_rows). Every statement is built from a model's _meta, names quoted here."""
import datetime
import functools
import sqlite3

import peewee
from peewee import DateTimeField

from app.db.connection import db
from app.db.connection import is_sqlite
from app.db.connection import real_database


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
        """The rows as they are bound: each datetime column through its field's db_value, then, on SQLite, the
        driver's own adapter (sqlite3.adapt: the same text the driver would store). Each distinct value is converted
        once: a batch's rows mostly share one time (a tick's `now`), and the driver, left to it, calls its Python
        adapter for every row (1.3 µs a value, a fifth of a visit's insert)."""
        rows = rows if isinstance(rows, list) else list(rows)
        for i, convert in self._dates:
            # Keyed with the zone too: equal instants in two zones compare equal, and each keeps its own text.
            bound = {key: _driver_value(convert(key[0])) for key in {(row[i], _zone(row[i])) for row in rows}}
            rows = [row[:i] + (bound[row[i], _zone(row[i])],) + row[i + 1:] for row in rows]
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


def _zone(value):
    return getattr(value, "tzinfo", None)


def _driver_value(value):
    """A converted datetime as SQLite's driver binds it (other values, and PostgreSQL's, as they are)."""
    if isinstance(value, datetime.date) and is_sqlite():
        return sqlite3.adapt(value)
    return value


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
        assignments += [f"{_quoted(f)} = {literal(f.db_value(value))}" for f, value in fixed]
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


def literal(value):
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
    return {**real_database(db).get_context_options()["field_types"], "AUTO": "BIGINT", "BIGAUTO": "BIGINT"}


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
    picked = names + [literal(f.db_value(v)) for f, v in fixed]
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
    one = "(" + ", ".join([param] * len(fields) + [literal(f.db_value(v)) for f, v in fixed]) + ")"
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
