"""Ids are never handed out twice (SQLite): every table's "id" becomes INTEGER PRIMARY KEY AUTOINCREMENT.

Without AUTOINCREMENT SQLite gives a new row max(id) + 1, so an id comes back as soon as the rows
above it are gone: after a restore (every row made since the backup) or after deleting the newest
rows (a campaign deleted with its sends). Those ids have left the box: send ids sit in the tracking,
unsubscribe and web-view links of mail already delivered, contact and list ids in webhook payloads
and exports. A reused id makes an unsubscribe from that old mail act on another person.

With AUTOINCREMENT SQLite keeps the highest id ever given in sqlite_sequence and never goes below it,
and `flask db restore` raises that counter past every id the replaced database had handed out
(app/backup/restored.raise_id_counters). PostgreSQL's SERIAL sequences never go back either; nothing to
do there.

SQLite cannot alter a column, so each table is rebuilt (foreign keys are off during migrations:
playhouse SqliteMigrator.migration_context, so dropping a table cascades nothing): its rows are copied
into a temporary table, the table is dropped and created again from its own CREATE statement with
AUTOINCREMENT added to "id", the rows go back with their ids, and its indexes are created again from
their own statements. Columns, defaults, constraints, foreign keys and index names stay exactly as
they were (tests/test_backup.py compares the schema); tables that reference a rebuilt one name it, so
their foreign keys hold (PRAGMA foreign_key_check at the end). No table is renamed: SQLite re-reads
the whole schema on every rename, which made this 0.4 s slower on an empty database (every test
creates one). The whole migration is one transaction: a failure leaves the database as it was. Each
table's rows are copied twice, so on a big database it takes a while and needs free disk for the
biggest table twice (the temporary copy lives in SQLite's temp directory) until it commits.

The migration runner's own schema_migration table keeps its plain id: those ids never leave the box.
"""
import re

from peewee import SqliteDatabase

KEEP = {"schema_migration"}
PLAIN_ID = '"id" INTEGER NOT NULL PRIMARY KEY'


def _tables(db):
    return [(name, sql) for name, sql in db.execute_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]


def up(migrator, db):
    if not isinstance(db, SqliteDatabase):
        return
    if db.execute_sql("PRAGMA foreign_keys").fetchone()[0]:
        # DROP TABLE would delete every row first, cascading into the tables that reference it.
        raise RuntimeError("0038 must run with foreign keys off (as playhouse's SqliteMigrator runs migrations)")
    for table, create in _tables(db):
        if table in KEEP or "AUTOINCREMENT" in create.upper():
            continue
        definition = re.match(r'\s*(CREATE TABLE (?:IF NOT EXISTS )?(?:"[^"]+"|\w+))\s*\((.*)\)\s*$', create, re.S)
        columns = definition.group(2).strip() if definition else ""
        if not (columns.startswith(PLAIN_ID) and columns[len(PLAIN_ID):][:1] in (",", "")):
            continue  # no plain integer "id" first (send_mark: its key is a send id)
        columns = PLAIN_ID + " AUTOINCREMENT" + columns[len(PLAIN_ID):]
        names = ", ".join(f'"{row[1]}"' for row in db.execute_sql(f'PRAGMA table_info("{table}")'))
        indexes = [sql for (sql,) in db.execute_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL ORDER BY name",
            (table,))]
        db.execute_sql(f'CREATE TEMP TABLE "rows_of_{table}" AS SELECT {names} FROM "{table}"')
        db.execute_sql(f'DROP TABLE "{table}"')
        db.execute_sql(f"{definition.group(1)} ({columns})")
        db.execute_sql(f'INSERT INTO "{table}" ({names}) SELECT {names} FROM temp."rows_of_{table}" ORDER BY "id"')
        db.execute_sql(f'DROP TABLE temp."rows_of_{table}"')
        for sql in indexes:
            db.execute_sql(sql)
    problems = db.execute_sql("PRAGMA foreign_key_check").fetchall()
    if problems:
        raise RuntimeError(f"foreign keys broken by the rebuild: {problems[:5]}")


def down(migrator, db):
    """Nothing to undo that matters: AUTOINCREMENT only stops SQLite from reusing ids."""
