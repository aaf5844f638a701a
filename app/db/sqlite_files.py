"""SQLite files opened with the sqlite3 module (a backup copy, or the live file from a health probe): the
integrity check, one file without its -wal, the migration level. PostgreSQL has no file: pg_dump plays these parts."""


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
