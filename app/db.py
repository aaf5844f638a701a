"""The database, in one place: a proxy bound by init_db(), and the base model.

SQLite is opened in WAL mode with foreign keys on and lock_type='IMMEDIATE',
so every db.atomic() takes the write lock at BEGIN. A deferred transaction that
reads and then writes gets SQLITE_BUSY at the lock upgrade without waiting for
the busy timeout; IMMEDIATE waits instead, so concurrent writers never see
"database is locked" (measured in ../shared/reference/style.md, section 7).
"""
from peewee import DatabaseProxy
from peewee import Model
from playhouse.db_url import connect

db = DatabaseProxy()

SQLITE_OPTIONS = dict(
    pragmas={"journal_mode": "wal", "foreign_keys": 1, "cache_size": -64000,
             "mmap_size": 268_435_456,  # big reads skip a copy: segment counts, docs/benchmarks.md
             "synchronous": "normal"},
    timeout=10,
    lock_type="IMMEDIATE",
)


def init_db(url):
    """Bind the proxy to the database at `url` (sqlite:///path or postgresql://...)."""
    options = SQLITE_OPTIONS if url.startswith("sqlite") else {}
    database = connect(url, **options)
    db.initialize(database)
    return database


def close_db(exc=None):
    if not db.is_closed():
        db.close()


class BaseModel(Model):
    class Meta:
        database = db
        legacy_table_names = False  # SendLog -> send_log
