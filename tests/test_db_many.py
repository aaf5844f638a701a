"""app.db's executemany statements: built from a model's _meta, names quoted, datetimes converted once
by the field's db_value, so what they store reads back exactly as a peewee write of the same values."""
import datetime

import pytest

from app import db as database
from app.db import db
from app.models import Contact
from app.models import Send
from app.models import Suppression
from app.models import Team


@pytest.fixture
def people(ctx):
    team = Team.create(name="Many")
    return team, [Contact.create(team=team, email=f"m{i}@example.com", domain="example.com") for i in range(3)]


def stored(contact_id):
    return db.execute_sql(f'SELECT "name", "last_activity_at" FROM "contact" WHERE "id" = {db.param}',
                          (contact_id,)).fetchone()


def test_the_statements_are_built_from_the_models_meta(ctx):
    update = database.update_many([Contact.name, Contact.last_activity_at], where=Contact.id)
    p = db.param  # ? on SQLite, %s on PostgreSQL
    assert update.sql == f'UPDATE "contact" SET "name" = {p}, "last_activity_at" = {p} WHERE "id" = {p}'
    assert update.fields == (Contact.name, Contact.last_activity_at, Contact.id)
    insert = database.insert_many([Send.campaign, Send.email, Send.status], ignore_conflicts=True)
    assert insert.sql == f'INSERT INTO "send" ("campaign_id", "email", "status") VALUES ({p}, {p}, {p}) ON CONFLICT DO NOTHING'
    assert database.update_many([Contact.name, Contact.last_activity_at], where=Contact.id) is update  # built once
    with pytest.raises(ValueError):
        database.update_many([Contact.name], where=Send.id)


def test_update_many_writes_each_row_and_counts_the_changes(people):
    team, (ann, bob, cy) = people
    at = datetime.datetime(2026, 3, 4, 5, 6, 7, 890)
    with db.atomic():
        changed = database.update_many([Contact.name, Contact.last_activity_at], where=Contact.id).run(
            [("Ann", at, ann.id), ("Bob", "2026-03-04 05:06:07", bob.id), ("Nobody", at, 10**9)])
    assert changed == 2
    assert Contact.get_by_id(ann.id).last_activity_at == at
    assert Contact.get_by_id(bob.id).last_activity_at == datetime.datetime(2026, 3, 4, 5, 6, 7)
    assert Contact.get_by_id(cy.id).name == ""
    # What is stored is what peewee itself stores for the same datetime (text on SQLite, a timestamp on PostgreSQL).
    Contact.update(last_activity_at=at).where(Contact.id == cy.id).execute()
    assert stored(ann.id)[1] == stored(cy.id)[1] == ("2026-03-04 05:06:07.000890" if database.is_sqlite() else at)


def test_a_datetime_column_goes_through_the_fields_db_value_then_the_drivers_adapter(ctx):
    """Text and datetime give the same bound value; on SQLite it is the driver's own text (converted once per distinct
    value, not by the driver once per row), on PostgreSQL the datetime, which psycopg adapts itself."""
    update = database.update_many([Contact.last_activity_at, Contact.name], where=Contact.id)
    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    bound = "2026-01-02 03:04:05" if database.is_sqlite() else when
    assert update.prepare([("2026-01-02 03:04:05", "x", 1), (when, "y", 2), (None, "z", 3)]) == [
        (bound, "x", 1), (bound, "y", 2), (None, "z", 3)]
    assert update.prepare(iter([])) == []


def test_equal_instants_in_two_zones_keep_their_own_text(ctx):
    """The once-per-value conversion must not hand one row another row's text: 12:00 UTC and 13:00 at +01:00 are
    equal datetimes (and hash alike), yet each is bound as given."""
    update = database.update_many([Contact.last_activity_at], where=Contact.id)
    utc = datetime.datetime(2026, 1, 2, 12, 0, tzinfo=datetime.timezone.utc)
    paris = datetime.datetime(2026, 1, 2, 13, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    assert utc == paris
    (first, _), (second, _) = update.prepare([(utc, 1), (paris, 2)])
    if database.is_sqlite():
        assert (first, second) == ("2026-01-02 12:00:00+00:00", "2026-01-02 13:00:00+01:00")
    else:
        assert (first.tzinfo, second.tzinfo) == (utc.tzinfo, paris.tzinfo)


def test_insert_many_ignores_conflicts_when_asked(people):
    team, _ = people
    insert = database.insert_many([Suppression.team, Suppression.kind, Suppression.value_hash, Suppression.hint,
                                   Suppression.reason, Suppression.created_at], ignore_conflicts=True)
    now = datetime.datetime(2026, 5, 6, 7, 8, 9)
    with db.atomic():
        insert.run([(team.id, "email", "h1", "a…@example.com", "manual", now)])
        insert.run([(team.id, "email", "h1", "again", "manual", now), (team.id, "email", "h2", "b…", "manual", now)])
    assert [(s.value_hash, s.hint, s.created_at) for s in Suppression.select().order_by(Suppression.id)] == [
        ("h1", "a…@example.com", now), ("h2", "b…", now)]


def test_insert_values_writes_new_rows_skips_conflicts_and_returns_the_new_ids(people):
    """On PostgreSQL the rows go as one array a column (INSERT ... SELECT FROM unnest); the rows stored and
    the ids returned are the same as SQLite's VALUES list gives."""
    team, (ann, _, _) = people
    statement = database.insert_values(
        [Contact.team, Contact.email, Contact.domain, Contact.name, Contact.attributes, Contact.created_at,
         Contact.updated_at], 3, fixed={Contact.status: "active", Contact.source: "import", Contact.consent_source: "",
                                      Contact.consent_ip: "", Contact.consent_text: ""},
        conflict=[Contact.team, Contact.email], returning=[Contact.email, Contact.id])
    stamp = "2026-03-04 05:06:07.000890"
    rows = [team.id, "new@example.com", "example.com", "New", '{"plan": "pro", "n": 2}', stamp, stamp,
            team.id, ann.email, "example.com", "Not Ann", "{}", stamp, stamp,
            team.id, "o'hara@example.com", "example.com", "", "{}", stamp, stamp]
    returned = dict(statement.run(rows).fetchall())
    assert set(returned) == {"new@example.com", "o'hara@example.com"}  # ann's address exists: skipped
    new = Contact.get_by_id(returned["new@example.com"])
    assert (new.name, new.attributes, new.status, new.source) == ("New", {"plan": "pro", "n": 2}, "active", "import")
    assert new.created_at == datetime.datetime(2026, 3, 4, 5, 6, 7, 890)
    assert Contact.get_by_id(ann.id).name == ""


def test_update_rows_changes_each_row_given(people):
    """update_many on SQLite; on PostgreSQL one UPDATE ... FROM unnest with an array a column."""
    team, (ann, bob, cy) = people
    stamp = datetime.datetime(2026, 3, 4, 5, 6, 7, 890)
    rows = [("Ann", '{"plan": "pro"}', stamp, ann.id), ("O'Bob", "{}", stamp, bob.id)]
    database.update_rows([Contact.name, Contact.attributes, Contact.updated_at], Contact.id).run(rows)
    ann, bob, cy = (Contact.get_by_id(c.id) for c in (ann, bob, cy))
    assert (ann.name, ann.attributes, ann.updated_at) == ("Ann", {"plan": "pro"}, stamp)
    assert (bob.name, bob.attributes) == ("O'Bob", {})
    assert cy.name == "" and cy.updated_at != stamp


def test_an_id_list_selects_and_updates_what_a_plain_list_does(people):
    """IdList writes one "(?, ...)" with the ids as parameters (the claim's 500 ids); peewee's own list
    compiles a node per id. Same rows on both stacks, an empty one matches nothing, and other
    parameters around it keep their places."""
    team, contacts = people
    ids = [c.id for c in contacts]
    some = [ids[0], ids[2], 10 ** 9]  # one that does not exist
    query = Contact.select(Contact.id).where((Contact.team == team.id) & (Contact.id << database.IdList(some))
                                             & (Contact.email != "nobody@example.com")).order_by(Contact.id)
    sql, params = query.sql()
    p = db.param
    assert f"IN ({p}, {p}, {p})" in sql and params == [team.id, *some, "nobody@example.com"]
    plain = Contact.select(Contact.id).where((Contact.team == team.id) & (Contact.id << some)).order_by(Contact.id)
    assert [c.id for c in query] == [c.id for c in plain] == [ids[0], ids[2]]
    assert list(Contact.select().where(Contact.id << database.IdList([]))) == []
    assert Contact.update(name="Picked").where(Contact.id << database.IdList(iter(some))).execute() == 2
    assert [c.name == "Picked" for c in Contact.select().order_by(Contact.id)] == [True, False, True]


def test_insert_rows_writes_each_row_skips_conflicts_and_counts_the_new_ones(people):
    """insert_many on SQLite; on PostgreSQL one INSERT ... SELECT FROM unnest with an array a column: JSON and
    datetime columns as they are bound, a conflict skipped when asked (and counted out), else peewee's IntegrityError."""
    from peewee import IntegrityError

    from app.models import Automation
    from app.models import AutomationRun
    team, (ann, bob, cy) = people
    automation = Automation.create(team=team, name="A", trigger={}, goal={})
    stamp = datetime.datetime(2026, 3, 4, 5, 6, 7, 890)
    fields = [AutomationRun.automation, AutomationRun.team, AutomationRun.contact, AutomationRun.entry,
              AutomationRun.state, AutomationRun.next_at, AutomationRun.data, AutomationRun.entered_at,
              AutomationRun.waiting_for, AutomationRun.exit_reason]
    data = AutomationRun.data.db_value({"trigger": "manual", "n": 1})
    row = lambda contact: (automation.id, team.id, contact.id, 1, "waiting", stamp, data, stamp, "", "")  # noqa: E731
    assert database.insert_rows(fields, ignore_conflicts=True).run([row(ann), row(bob)]) == 2
    assert database.insert_rows(fields, ignore_conflicts=True).run([row(bob), row(cy)]) == 1  # bob is there
    runs = {r.contact_id: r for r in AutomationRun.select()}
    assert set(runs) == {ann.id, bob.id, cy.id}
    assert (runs[cy.id].data, runs[cy.id].next_at, runs[cy.id].state) == ({"trigger": "manual", "n": 1}, stamp,
                                                                           "waiting")
    with pytest.raises(IntegrityError):
        with db.atomic():
            database.insert_rows(fields).run([row(ann)])
    assert AutomationRun.select().count() == 3
