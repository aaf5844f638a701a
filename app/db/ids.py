"""Ids: the id column that never hands an id out twice (IdField), the counters behind it (read and raised by
backups and restores), and the id cursors of batch readers (max_id, id_window_end, settled_max_id)."""
from peewee import AutoField
from peewee import NodeList
from peewee import SQL
from peewee import SqliteDatabase

from app.db.connection import db
from app.db.connection import is_sqlite
from app.db.connection import real_database


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
        if isinstance(real_database(self.model._meta.database), SqliteDatabase):
            return NodeList((node, SQL("AUTOINCREMENT")))
        return node


def id_tables(database):
    """Names of the tables whose ids come from a counter that never goes back."""
    database = real_database(database)
    if isinstance(database, SqliteDatabase):
        return [name for (name,) in database.execute_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%AUTOINCREMENT%' ORDER BY name")]
    return [name for (name,) in database.execute_sql(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND column_name = 'id' AND column_default LIKE %s ORDER BY table_name", ("nextval(%",))]


def id_high_water(database):
    """{table: the highest id it has handed out}: its counter, or a larger id in the table itself."""
    database = real_database(database)
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
    database = real_database(database)
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
