"""app.db.fair_write (a bulk writer leaves SQLite's write lock free for as long as it held it) and app.db.plain_rows
(a SELECT's rows as the driver returns them)."""
import sqlite3
import time
import types

import pytest

from app.db import connection as database
from app.db import db
from app.db import fair_write
from app.db import is_sqlite
from app.db import plain_rows
from app.models import Contact
from app.models import Team


@pytest.fixture
def pauses(monkeypatch):
    """The pauses fair_write takes, each with what another connection saw of the team table at that moment."""
    taken = []

    def sleep(seconds):
        seen = None
        if is_sqlite():
            with sqlite3.connect(db.obj.database) as other:
                seen = [name for (name,) in other.execute('SELECT "name" FROM "team" ORDER BY "id"')]
        taken.append((seconds, seen))

    monkeypatch.setattr(database, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=sleep))
    return taken


def test_a_fair_write_commits_then_leaves_the_lock_free_on_sqlite(ctx, pauses):
    with fair_write():
        Team.create(name="Fair")
    assert Team.select().where(Team.name == "Fair").count() == 1
    if not is_sqlite():
        assert pauses == []  # PostgreSQL locks rows, not the database: nothing to wait for
        return
    [(seconds, seen)] = pauses
    assert 0 < seconds <= database.FAIR_PAUSE_LIMIT
    assert "Fair" in seen  # committed before the pause: the lock is free while it pauses


def test_no_pause_inside_an_outer_transaction_nor_after_a_rollback(ctx, pauses):
    with db.atomic():
        with fair_write():
            Team.create(name="Inner")
    assert pauses == []  # the outer transaction still held the lock: pausing would only hold it longer
    with pytest.raises(RuntimeError):
        with fair_write():
            Team.create(name="Rolled back")
            raise RuntimeError("boom")
    assert Team.select().where(Team.name == "Rolled back").count() == 0
    assert pauses == []


def test_plain_rows_are_the_drivers_tuples(ctx):
    team = Team.create(name="Rows")
    made = [Contact.create(team=team, email=f"p{i}@example.com", domain="example.com", status="active").id
            for i in range(3)]
    query = (Contact.select(Contact.id, Contact.team, Contact.email, Contact.status)
             .where(Contact.team == team.id).order_by(Contact.id))
    assert plain_rows(query) == [(made[i], team.id, f"p{i}@example.com", "active") for i in range(3)]
    assert plain_rows(query.where(Contact.id < 0)) == []
