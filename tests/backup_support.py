"""Helpers for the backup tests."""
import os
import sqlite3


def corrupt(path):
    """Overwrite one page of an index with garbage, the way a stale -wal replay damages pages.

    `SELECT 1` still answers; only an integrity check (or a query through that index) sees it."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    root = connection.execute("SELECT rootpage FROM sqlite_master WHERE type='index' AND tbl_name='schema_migration'"
                              " AND sql IS NULL").fetchone()
    root = root or connection.execute("SELECT rootpage FROM sqlite_master WHERE type='index' ORDER BY rootpage DESC"
                                      " LIMIT 1").fetchone()
    connection.close()
    with open(path, "r+b") as f:
        f.seek((root[0] - 1) * page_size)
        f.write(b"\x0d\xff\xff\xff" + os.urandom(page_size - 4))
