"""What SQLite and PostgreSQL spell differently: each function writes both spellings and picks by the bound
database, so the PostgreSQL port changes the engine URL, not the callers. Also the statements built once for hot
paths, and the row locks of claims among several workers."""
import re

import peewee
from peewee import SQL
from peewee import SqliteDatabase
from peewee import fn

from app.db.bulk import literal
from app.db.connection import db
from app.db.connection import is_sqlite
from app.db.connection import real_database


# Report statements that are the same on both (INSERT ... SELECT ... GROUP BY, ON CONFLICT ... DO UPDATE with
# excluded.) call the helpers below for the parts that are not.

_KEY = re.compile(r"[a-z_][a-z0-9_]{0,39}")


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
    if isinstance(real_database(database), SqliteDatabase):
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


def in_partial_index(field, value):
    """`field = 'value'` with the value written into the statement (a constant of the code, never a user's), for the
    condition a partial index is defined by (CREATE INDEX ... WHERE state = 'waiting', migration 0077). A planner uses
    such an index only when the query says the same words: SQLite never does for a bound parameter, nor does a
    PostgreSQL generic plan. The same spelling on both."""
    return field == SQL(literal(field.db_value(value)))
