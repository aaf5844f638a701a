"""app.db.PromptSqliteDatabase: a transaction that finds SQLite's write lock taken tries again every 0.2-1 ms
(SQLite's own handler sleeps up to 100 ms between tries), gives up after the connection's busy_timeout as before,
and leaves that busy_timeout as it found it."""
import sqlite3
import time
import types

import peewee
import pytest

from app.db import connection as database
from app.db import PromptSqliteDatabase
from app.db import connection_tuning
from app.db import db
from app.db import open_database
from app.models import Team
from tests.stack_support import sqlite_only

pytestmark = sqlite_only("SQLite's database-wide write lock; PostgreSQL locks rows")


@pytest.fixture
def holder(ctx):
    """A second connection to the test's database file, holding the write lock until it commits."""
    Team.create(name="Before")
    other = sqlite3.connect(db.obj.database, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("""UPDATE "team" SET "name" = 'Holder' WHERE "name" = 'Before'""")
    yield other
    if other.in_transaction:
        other.rollback()
    other.close()


def busy_timeout():
    return db.execute_sql("PRAGMA busy_timeout").fetchone()[0]


def test_a_waiting_transaction_tries_again_within_a_millisecond_and_gets_the_lock(holder, monkeypatch):
    pauses = []

    def sleep(seconds):  # the holder commits after the waiter's third try
        pauses.append(seconds)
        if len(pauses) == 3:
            holder.commit()

    monkeypatch.setattr(database, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=sleep))
    before = busy_timeout()
    with db.atomic():
        Team.create(name="Waiter")
    assert pauses == [0.0002, 0.0004, 0.0008]  # doubling from WRITE_LOCK_POLL[0], never past WRITE_LOCK_POLL[1]
    assert all(pause <= database.WRITE_LOCK_POLL[1] for pause in pauses)
    assert sorted(Team.select(Team.name).tuples()) == [("Holder",), ("Waiter",)]
    assert busy_timeout() == before  # SQLite's own wait is back for statements outside a transaction


def test_a_lock_held_past_the_busy_timeout_is_still_database_is_locked(holder):
    connection_tuning(cache_kb=2000, busy_ms=60)
    with pytest.raises(peewee.OperationalError, match="locked"):
        with db.atomic():
            Team.create(name="Never")
    assert busy_timeout() == 60
    holder.commit()
    assert [name for (name,) in Team.select(Team.name).tuples()] == ["Holder"]  # nothing of the failed one


def test_other_errors_at_begin_are_not_retried(ctx, monkeypatch):
    monkeypatch.setattr(database, "time", types.SimpleNamespace(
        monotonic=time.monotonic, sleep=lambda seconds: pytest.fail("retried an error that is not a lock")))
    with db.atomic():
        with pytest.raises(peewee.OperationalError, match="within a transaction"):
            db.obj.begin()  # a BEGIN inside a transaction fails at once, with SQLite's message


def test_sqlite_urls_open_the_prompt_database_with_the_apps_options(tmp_path):
    opened = open_database(f"sqlite:///{tmp_path}/loft.db")
    assert isinstance(opened, PromptSqliteDatabase)
    assert opened.database == f"{tmp_path}/loft.db"
    opened.connect()
    assert opened.execute_sql("PRAGMA journal_mode").fetchone() == ("wal",)
    assert opened.execute_sql("PRAGMA busy_timeout").fetchone() == (10000,)
    opened.close()
