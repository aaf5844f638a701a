"""Event rows have one writer: app/events.py. Checked like behaviour, so a second writer cannot come back.

- Nothing outside app/events.py calls Event.create / insert / insert_many / insert_from /
  bulk_create / replace / replace_many / get_or_create, or builds an Event(...) to save it.
- No SQL text outside app/events.py inserts into the event table (by name or through
  Event._meta.table_name).
- Every type the code writes is declared in EventType, with the strings stored today.
And app.events itself: each of its writers stores what it is given, in the caller's transaction.
"""
import ast
import re

import pytest
from peewee import Value

from app import events
from app.config import ROOT
from app.db import db
from app.models import Contact
from app.models import Event
from app.models import EventType
from app.models import Team

CODE_DIRS = ("app", "tasks", "migrations")
WRITER = ROOT / "app" / "events.py"
WRITING = {"create", "insert", "insert_many", "insert_from", "bulk_create", "replace", "replace_many",
           "get_or_create", "save"}
INSERT_SQL = re.compile(r"""INSERT\s+(?:OR\s+\w+\s+)?INTO\s+(?:["'`]?event["'`]?(?![\w.])|\{[^}]*\bEvent\._meta)""",
                        re.I)


def python_files():
    for folder in CODE_DIRS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def rel(path):
    return str(path.relative_to(ROOT))


def is_event_model(node):
    """`Event` or `<module>.Event` (asyncio.Event and threading.Event are other things)."""
    if isinstance(node, ast.Name):
        return node.id == "Event"
    return isinstance(node, ast.Attribute) and node.attr == "Event" and isinstance(node.value, ast.Name) \
        and node.value.id == "models"


def event_writes(source):
    """(line, what) for every Event write in `source`: a writing classmethod, or an Event(...) instance."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in WRITING and is_event_model(func.value):
            found.append((node.lineno, f"Event.{func.attr}"))
        elif is_event_model(func):
            found.append((node.lineno, "Event(...)"))
    return found


def insert_statements(source):
    return [(source.count("\n", 0, match.start()) + 1, match.group(0)) for match in INSERT_SQL.finditer(source)]


def test_only_app_events_writes_event_rows():
    found = []
    for path in python_files():
        if path == WRITER:
            continue
        source = path.read_text(encoding="utf-8")
        found += [f"{rel(path)}:{line} {what}" for line, what in event_writes(source) + insert_statements(source)]
    assert found == [], "write Event rows through app.events (record, record_many, record_for, record_from, write)"


def test_the_checks_see_what_they_look_for():
    """The detectors themselves, on small samples, so the check cannot pass by finding nothing."""
    assert [what for _, what in event_writes("Event.create(team=1, type='x')\n")] == ["Event.create"]
    assert [what for _, what in event_writes("models.Event.insert_many(rows).execute()\n")] == ["Event.insert_many"]
    assert [what for _, what in event_writes("Event(team=1).save()\n")] == ["Event(...)"]
    assert event_writes("asyncio.Event()\nthreading.Event()\nEvent.select().where(Event.id == 1)\n") == []
    assert insert_statements('sql = "INSERT INTO event (team_id) VALUES (?)"\n')
    assert insert_statements("sql = 'insert into \"event\" (\"team_id\") values (%s)'\n")
    assert insert_statements('sql = f"INSERT INTO {Event._meta.table_name} (team_id) VALUES ({p})"\n')
    assert not insert_statements('sql = "INSERT INTO event_log (x) VALUES (1)"\n')
    assert not insert_statements('sql = "INSERT INTO suppression (team_id) VALUES (?)"\n')
    assert any(path == WRITER for path in python_files())
    assert event_writes(WRITER.read_text(encoding="utf-8")), "app/events.py itself is seen writing"


def test_event_types_are_the_stored_strings():
    # The values are what event.type holds in every existing database: changing one needs a data migration.
    assert {t.value for t in EventType} == {
        "created", "updated", "status_changed", "subscribed", "confirmed", "removed_from_list", "unsubscribed",
        "sent", "delivered", "deferred", "bounced", "complained", "opened", "clicked",
        "tx_sent", "tx_failed", "tx_bounced", "tx_opened", "tx_clicked"}
    assert EventType.SENT == "sent" and f"{EventType.OPENED}" == "opened"


@pytest.fixture
def people(ctx):
    team = Team.create(name="Events")
    contacts = [Contact.create(team=team, email=f"p{i}@example.com", domain="example.com") for i in range(3)]
    return team, contacts


def stored(**where):
    query = Event.select().order_by(Event.id)
    for name, value in where.items():
        query = query.where(getattr(Event, name) == value)
    return [(e.contact_id, e.campaign_id, e.type, e.data) for e in query]


def test_record_writes_one_event_and_refuses_an_undeclared_type(people):
    team, (ann, *_) = people
    event_id = events.record(team, ann, EventType.UPDATED, {"fields": ["name"]}, campaign_id=7)
    assert Event.get_by_id(event_id).team_id == team.id
    assert stored(team=team.id) == [(ann.id, 7, "updated", {"fields": ["name"]})]
    with pytest.raises(ValueError):
        events.record(team, ann, "teleported")
    events.record(team.id, None, "status_changed")
    assert stored(team=team.id)[-1] == (None, None, "status_changed", {})


def test_the_bulk_writers_store_every_row(people):
    team, contacts = people
    ids = [c.id for c in contacts]
    assert events.record_for(team, ids, EventType.SUBSCRIBED, {"list": "News"}) == 3
    assert events.record_many((team, c.id, 5, EventType.SENT, None, {"send": c.id}) for c in contacts) == 3
    assert events.record_for(team, [], EventType.SUBSCRIBED) == 0 and events.record_many([]) == 0
    with pytest.raises(ValueError):
        events.record_many([(team, ids[0], None, "nonsense", None, {})])
    with db.atomic():
        events.write(db.cursor(), [(team.id, ids[0], 9, "opened", "2026-01-02 03:04:05", '{"send": 1}')])
    assert stored(type="subscribed") == [(i, None, "subscribed", {"list": "News"}) for i in ids]
    assert stored(type="sent") == [(i, 5, "sent", {"send": i}) for i in ids]
    assert stored(type="opened") == [(ids[0], 9, "opened", {"send": 1})]
    assert str(Event.get(Event.type == "opened").at) == "2026-01-02 03:04:05"


def test_record_from_inserts_what_a_query_selects(people):
    team, contacts = people
    query = Contact.select(Contact.team, Contact.id, Value("status_changed"), Value("2026-01-02 00:00:00"),
                           Value('{"to": "suppressed"}')).where(Contact.team == team)
    events.record_from(query)
    assert stored(team=team.id) == [(c.id, None, "status_changed", {"to": "suppressed"}) for c in contacts]


def test_a_write_rolls_back_with_the_callers_transaction(people):
    team, (ann, *_) = people
    with pytest.raises(RuntimeError):
        with db.atomic():
            events.record(team, ann, EventType.CREATED)
            events.record_for(team, [ann.id], EventType.SUBSCRIBED)
            raise RuntimeError("the caller's work failed")
    assert stored(team=team.id) == []


def test_the_fast_path_statement_is_built_from_the_model(ctx):
    sql = events.statement().sql
    assert sql.startswith(f'INSERT INTO "{Event._meta.table_name}" '
                          '("team_id", "contact_id", "campaign_id", "type", "at", "data")')
    assert sql.count(db.param) == 6
