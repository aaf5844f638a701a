"""The database, in one place: every piece of SQL text the app runs is written in this package
(tests/test_structure_sql.py), in the module of its noun:

- connection.py: the proxy (db) that init_db() binds, how SQLite is opened, a web thread's kept connection,
  the base model, fair_write;
- json_columns.py: JSONField, a JSON document column;
- ids.py: IdField and the id counters that never hand an id out twice, the id cursors of batch readers;
- bulk.py: many rows in one statement (executemany, many VALUES, PostgreSQL arrays), long IN lists, plain rows;
- dialect.py: what SQLite and PostgreSQL spell differently, statements built once, the row locks of claims;
- sqlite_files.py: a SQLite file opened by itself (backups, the health check).

Callers import from here (`from app.db import db`); each name is defined once, in its module."""
from app.db.connection import BaseModel
from app.db.connection import close_db
from app.db.connection import connection_tuning
from app.db.connection import db
from app.db.connection import FAIR_PAUSE_LIMIT
from app.db.connection import fair_write
from app.db.connection import init_db
from app.db.connection import is_sqlite
from app.db.connection import KEEP_CONNECTION_SECONDS
from app.db.connection import open_database
from app.db.connection import ping
from app.db.connection import PromptSqliteDatabase
from app.db.connection import real_database
from app.db.connection import release_db
from app.db.connection import sqlite_database
from app.db.connection import SQLITE_OPTIONS
from app.db.connection import WRITE_LOCK_POLL
from app.db.json_columns import JSONField
from app.db.ids import id_high_water
from app.db.ids import id_tables
from app.db.ids import id_window_end
from app.db.ids import IdField
from app.db.ids import max_id
from app.db.ids import MAX_ROW_ID
from app.db.ids import raise_id_counters
from app.db.ids import settled_max_id
from app.db.bulk import add_many
from app.db.bulk import IdList
from app.db.bulk import insert_many
from app.db.bulk import insert_rows
from app.db.bulk import insert_values
from app.db.bulk import Many
from app.db.bulk import plain_rows
from app.db.bulk import select_among
from app.db.bulk import Statement
from app.db.bulk import update_many
from app.db.bulk import update_rows
from app.db.bulk import upsert_add
from app.db.dialect import claimed_among
from app.db.dialect import copy_rows
from app.db.dialect import count_if
from app.db.dialect import count_rows
from app.db.dialect import count_where
from app.db.dialect import day_text
from app.db.dialect import email_domain
from app.db.dialect import empty_table
from app.db.dialect import everything
from app.db.dialect import first_row
from app.db.dialect import hour_text
from app.db.dialect import in_partial_index
from app.db.dialect import json_flag
from app.db.dialect import json_int
from app.db.dialect import json_value
from app.db.dialect import leave_room_for_updates
from app.db.dialect import locked
from app.db.dialect import month_of
from app.db.dialect import nothing
from app.db.dialect import refresh_statistics
from app.db.dialect import server_default
from app.db.dialect import skip_locked
from app.db.dialect import statement
from app.db.dialect import upsert_adding
from app.db.dialect import upsert_adding_rows
from app.db.sqlite_files import sqlite_check
from app.db.sqlite_files import sqlite_migration_level
from app.db.sqlite_files import sqlite_single_file

__all__ = [
    "BaseModel",
    "close_db",
    "connection_tuning",
    "db",
    "FAIR_PAUSE_LIMIT",
    "fair_write",
    "init_db",
    "is_sqlite",
    "KEEP_CONNECTION_SECONDS",
    "open_database",
    "ping",
    "PromptSqliteDatabase",
    "real_database",
    "release_db",
    "sqlite_database",
    "SQLITE_OPTIONS",
    "WRITE_LOCK_POLL",
    "JSONField",
    "id_high_water",
    "id_tables",
    "id_window_end",
    "IdField",
    "max_id",
    "MAX_ROW_ID",
    "raise_id_counters",
    "settled_max_id",
    "add_many",
    "IdList",
    "insert_many",
    "insert_rows",
    "insert_values",
    "Many",
    "plain_rows",
    "select_among",
    "Statement",
    "update_many",
    "update_rows",
    "upsert_add",
    "claimed_among",
    "copy_rows",
    "count_if",
    "count_rows",
    "count_where",
    "day_text",
    "email_domain",
    "empty_table",
    "everything",
    "first_row",
    "hour_text",
    "in_partial_index",
    "json_flag",
    "json_int",
    "json_value",
    "leave_room_for_updates",
    "locked",
    "month_of",
    "nothing",
    "refresh_statistics",
    "server_default",
    "skip_locked",
    "statement",
    "upsert_adding",
    "upsert_adding_rows",
    "sqlite_check",
    "sqlite_migration_level",
    "sqlite_single_file",
]
