"""app/db/dialect.py: each helper runs for real on the stack the suite runs on (SQLite, or
PostgreSQL under `make test-pg`), and the PostgreSQL spellings are also checked as text on either."""
import datetime

import pytest
from peewee import fn

from app.db import dialect
from app.db import ids as id_cursors
from app.db import db
from app.db import open_database
from app.models import Event
from app.models import Team


@pytest.fixture
def team(ctx):
    return Team.create(name="Acme")


def test_json_values_read_what_the_json_column_holds(team):
    Event.create(team=team, type="opened", data={"send": 7, "machine": True, "kind": "soft"})
    Event.create(team=team, type="opened", data={})
    rows = db.execute_sql(
        f"SELECT {dialect.json_int('data', 'send')}, {dialect.json_flag('data', 'machine')}, "
        f"{dialect.json_value('data', 'kind')} FROM event ORDER BY id").fetchall()
    assert rows == [(7, 1, "soft"), (None, 0, None)]
    with pytest.raises(ValueError):
        dialect.json_value("data", "kind') OR 1=1 --")


def test_days_hours_domains_and_counts(team):
    Event.create(team=team, type="sent", data={})
    Event.create(team=team, type="opened", data={})
    sent = dialect.count_if("type = 'sent'")
    [(day, hour, sent)] = db.execute_sql(
        f"SELECT min({dialect.day_text('at')}), min({dialect.hour_text('at')}), {sent} FROM event").fetchall()
    assert len(day) == 10 and hour.startswith(day) and len(hour) == 13 and sent == 1
    address = "'Ann@Example.COM'"
    [(domain,)] = db.execute_sql(f"SELECT {dialect.email_domain(address)}").fetchall()
    assert domain == "example.com"


def test_upserts_add_and_id_windows_walk(team):
    for _ in range(5):
        Event.create(team=team, type="sent", data={})
    first = id_cursors.max_id("event") - 4
    assert id_cursors.id_window_end("event", first - 1, 3) == first + 2
    assert id_cursors.id_window_end("event", id_cursors.max_id("event"), 3) is None
    db.execute_sql("CREATE TEMP TABLE tally (k TEXT PRIMARY KEY, n INTEGER)")
    dialect.upsert_adding_rows("tally", ["k"], ["n"], [("a", 2), ("b", 1)])
    dialect.upsert_adding_rows("tally", ["k"], ["n"], [("a", 3)])
    dialect.upsert_adding("tally", ["k"], ["n"], "SELECT 'b', count(*) FROM event WHERE id > 0 GROUP BY 1")
    assert dict(db.execute_sql("SELECT k, n FROM tally").fetchall()) == {"a": 5, "b": 6}


def test_the_postgresql_spellings(monkeypatch):
    monkeypatch.setattr(dialect, "is_sqlite", lambda: False)
    assert dialect.json_value("e.data", "kind") == "(e.data ->> 'kind')"
    assert dialect.json_int("e.data", "send") == "(e.data ->> 'send')::bigint"
    assert dialect.json_flag("e.data", "bot") == "coalesce((e.data ->> 'bot')::boolean::int, 0)"
    assert dialect.day_text("e.at") == "to_char(e.at, 'YYYY-MM-DD')"
    assert dialect.hour_text("e.at") == "to_char(e.at, 'YYYY-MM-DD HH24')"
    assert dialect.email_domain("s.email") == "lower(split_part(s.email, '@', 2))"
    assert dialect.count_if("type = 'sent'") == "count(*) FILTER (WHERE type = 'sent')"


def test_months_group_what_they_select(team):
    for at in ("2026-01-31 23:59:59", "2026-02-01 00:00:00", "2026-02-28 12:00:00"):
        Event.create(team=team, type="sent", data={}, at=datetime.datetime.fromisoformat(at))
    month = dialect.month_of(Event.at)
    rows = Event.select(month, fn.COUNT(Event.id)).group_by(month).order_by(month).tuples()
    assert list(rows) == [("2026-01", 1), ("2026-02", 2)]


def test_count_where_counts_the_rows_of_each_group_that_match(team):
    for type in ("sent", "sent", "opened"):
        Event.create(team=team, type=type, data={})
    other = Team.create(name="Other")
    Event.create(team=other, type="opened", data={})
    rows = (Event.select(Event.team, dialect.count_where(Event.type == "sent"), fn.COUNT(Event.id))
            .group_by(Event.team).order_by(Event.team).tuples())
    assert [(sent or 0, total) for _, sent, total in rows] == [(2, 3), (0, 1)]


def test_a_settled_id_is_the_highest_committed_one_when_no_writer_is_running(team):
    assert id_cursors.settled_max_id("event") == 0
    ids = [Event.create(team=team, type="sent", data={}).id for _ in range(3)]
    assert id_cursors.settled_max_id("event") == ids[-1]
    assert id_cursors.settled_max_id("event", after=ids[-1] + 5) == ids[-1] + 5  # never moves a cursor back
    assert id_cursors.id_window_end("event", 0, 100) == ids[-1]


def test_an_id_cursor_stops_below_a_row_a_running_transaction_may_still_precede(ctx, team):
    if dialect.is_sqlite():
        pytest.skip("PostgreSQL only: on SQLite a writer holds the write lock from BEGIN, so ids commit in order")
    read = Event.create(team=team, type="sent", data={}).id
    slow_writer = open_database(ctx.config["DATABASE_URL"])
    try:
        with slow_writer.atomic():
            with Event.bind_ctx(slow_writer):
                slow = Event.create(team=team, type="sent", data={}).id
            quick = Event.create(team=team, type="sent", data={}).id  # commits first, with the larger id
            assert read < slow < quick
            assert id_cursors.id_window_end("event", 0, 100) == read
            assert id_cursors.settled_max_id("event") == read
            assert id_cursors.id_window_end("event", read, 100) is None
        assert id_cursors.id_window_end("event", read, 100) == quick
        assert id_cursors.settled_max_id("event") == quick
    finally:
        slow_writer.close()


def test_an_id_drawn_before_its_transaction_wrote_anything_holds_the_cursor_back(ctx, team):
    """The moment inside an INSERT between drawing its id and getting a transaction id: the statement's
    snapshot (kept here by a REPEATABLE READ transaction) stands for it."""
    if dialect.is_sqlite():
        pytest.skip("PostgreSQL only: on SQLite a writer holds the write lock from BEGIN, so ids commit in order")
    read = Event.create(team=team, type="sent", data={}).id
    slow_writer = open_database(ctx.config["DATABASE_URL"])
    try:
        with slow_writer.atomic():
            slow_writer.execute_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            [(drawn,)] = slow_writer.execute_sql("SELECT nextval(pg_get_serial_sequence('event', 'id'))").fetchall()
            quick = Event.create(team=team, type="sent", data={}).id
            assert read < drawn < quick
            assert id_cursors.id_window_end("event", read, 100) is None
            # At most `read`: the snapshot's xmin is the oldest transaction of the whole server, so a
            # transaction in another database (another test worker's) may hold the cursor back further.
            assert id_cursors.settled_max_id("event") <= read
            with Event.bind_ctx(slow_writer):
                Event.create(id=drawn, team=team, type="sent", data={})
        assert id_cursors.id_window_end("event", read, 1) == drawn
        assert id_cursors.id_window_end("event", drawn, 100) == quick
    finally:
        slow_writer.close()
