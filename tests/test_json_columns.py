"""JSON columns (app.db.JSONField): Python objects in and out, old rows still readable, path queries.

The columns were TEXT holding json.dumps output before they were typed; SQLite keeps them TEXT, so
rows written by that code must read back as they were, and rows written now must hold the same text.
"""
import json

import pytest

from app.db import BaseModel
from app.db import JSONField
from app.db import db
from app.models import Campaign
from app.models import Contact
from app.models import Event
from app.models import InstanceSetting
from app.models import Segment
from app.models import Team
from app.models import WebhookEndpoint
from app.sending import ledger
from tests.stack_support import sqlite_only


@pytest.fixture
def team(ctx):
    return Team.create(name="Acme")


def _raw(sql, params=()):
    return db.execute_sql(sql, params).fetchall()


@sqlite_only("reads the TEXT SQLite stores; PostgreSQL's columns are JSONB (migration 0050)")
def test_a_row_written_by_the_old_code_reads_back_as_python(team):
    # What the TextField code stored: json.dumps text, and "" where nothing had been set.
    db.execute_sql("INSERT INTO contact (team_id, email, domain, name, status, attributes, source, consent_source, "
                   "consent_ip, consent_text, created_at, updated_at) VALUES (?, 'old@example.com', 'example.com', "
                   "'', 'active', ?, 'import', '', '', '', '2026-01-01', '2026-01-01')",
                   (team.id, json.dumps({"plan": "pro", "seats": 3, "vip": True})))
    db.execute_sql("INSERT INTO contact (team_id, email, domain, name, status, attributes, source, consent_source, "
                   "consent_ip, consent_text, created_at, updated_at) VALUES (?, 'blank@example.com', 'example.com', "
                   "'', 'active', '', 'import', '', '', '', '2026-01-01', '2026-01-01')", (team.id,))
    db.execute_sql("INSERT INTO webhook_endpoint (team_id, url, description, event_types, secret, enabled, created_at)"
                   " VALUES (?, 'https://hooks.example.com/', '', '[\"opened\", \"clicked\"]', '', 1, '2026-01-01')",
                   (team.id,))

    assert Contact.get(Contact.email == "old@example.com").attributes == {"plan": "pro", "seats": 3, "vip": True}
    assert Contact.get(Contact.email == "blank@example.com").attributes == {}
    assert WebhookEndpoint.get(WebhookEndpoint.team == team).event_types == ["opened", "clicked"]


@sqlite_only("reads the TEXT SQLite stores; PostgreSQL's columns are JSONB (migration 0050)")
def test_a_row_written_now_holds_the_text_the_old_code_wrote(team):
    attributes = {"city": "Zürich", "seats": 2, "vip": False, "tags": ["a", "b"]}
    contact = Contact.create(team=team, email="new@example.com", domain="example.com", attributes=attributes)
    [(stored,)] = _raw("SELECT attributes FROM contact WHERE id = ?", (contact.id,))
    assert stored == json.dumps(attributes)
    assert Contact.get_by_id(contact.id).attributes == attributes
    # A new row gets its own empty document, not one shared between rows.
    first, second = Campaign(team=team), Campaign(team=team)
    first.ab_test["metric"] = "opens"
    assert second.ab_test == {} and second.audience["lists"] == []


def test_json_text_where_a_document_belongs_is_refused(team):
    with pytest.raises(TypeError, match="Contact.attributes takes a dict"):
        Contact.create(team=team, email="x@example.com", domain="example.com", attributes='{"plan": "pro"}')
    with pytest.raises(TypeError, match="WebhookEndpoint.event_types takes a list"):
        WebhookEndpoint.create(team=team, url="https://hooks.example.com/", event_types='["opened"]')


@sqlite_only("reads the TEXT SQLite stores; PostgreSQL's columns are JSONB (migration 0050); tests/test_stack.py checks the values there")
def test_any_json_value_column_keeps_strings_and_null(team):
    InstanceSetting.create(key="footer", value="{not a document, just text}")
    InstanceSetting.create(key="nothing", value=None)
    assert dict(_raw("SELECT key, value FROM instance_setting")) == {
        "footer": '"{not a document, just text}"', "nothing": "null"}
    assert {s.key: s.value for s in InstanceSetting.select()} == {"footer": "{not a document, just text}",
                                                                 "nothing": None}


@sqlite_only("JSONB refuses damaged text, so none can be stored")
def test_damaged_text_reads_as_text_and_the_audience_says_so(team):
    campaign = Campaign.create(team=team, name="Spring")
    db.execute_sql("UPDATE campaign SET audience = 'not json' WHERE id = ?", (campaign.id,))
    campaign = Campaign.get_by_id(campaign.id)
    assert campaign.audience == "not json"
    with pytest.raises(ledger.LedgerError, match="damaged"):
        ledger.audience_of(campaign)


@sqlite_only("PostgreSQL binds psycopg's Jsonb, not text")
def test_the_fast_path_binds_the_stored_text():
    # executemany writers (app.events.write) send Event.data.db_value(...) as a plain parameter.
    assert Event.data.db_value({"send": 7}) == '{"send": 7}'
    assert Event.data.db_value({}) == "{}"


def test_path_queries_read_inside_the_document(team):
    for email, attributes in (("a@example.com", {"plan": "pro", "seats": 3, "vip": True}),
                              ("b@example.com", {"plan": "free", "seats": 12, "vip": False}),
                              ("c@example.com", {"note": None})):
        Contact.create(team=team, email=email, domain="example.com", attributes=attributes)

    def emails(condition):
        return sorted(c.email for c in Contact.select().where(condition))

    assert emails(Contact.attributes["plan"].as_text() == "pro") == ["a@example.com"]
    assert emails(Contact.attributes["seats"].as_float() > 5) == ["b@example.com"]
    assert emails(Contact.attributes["vip"] == True) == ["a@example.com"]  # noqa: E712
    assert emails(Contact.attributes["vip"] == False) == ["b@example.com"]  # noqa: E712
    assert emails(Contact.attributes["note"].is_null(False)) == []
    Contact.update(attributes=Contact.attributes["plan"].remove()).execute()
    assert [c.attributes for c in Contact.select().order_by(Contact.email)] == [
        {"seats": 3, "vip": True}, {"seats": 12, "vip": False}, {"note": None}]


def test_segment_rules_round_trip(team):
    rules = {"op": "and", "rules": [{"field": "custom:plan", "operator": "is", "value": "pro"}]}
    segment = Segment.create(team=team, name="Pro", rules=rules)
    assert Segment.get_by_id(segment.id).rules == rules
    assert Segment.create(team=team, name="Everyone").rules == {"op": "and", "rules": []}


@sqlite_only("the SQLite column type")
def test_the_field_is_text_on_sqlite():
    assert isinstance(Contact.attributes, JSONField)
    [(kind,)] = [(c[2],) for c in _raw("PRAGMA table_info(contact)") if c[1] == "attributes"]
    assert kind.upper() == "TEXT"


@sqlite_only("reads the TEXT SQLite stores; PostgreSQL's columns are JSONB (migration 0050)")
def test_every_json_column_reads_what_the_text_columns_held():
    # Each JSONField of every model, fed what the TextField code left in the database.
    import inspect

    from app import models
    fields = [field for _, model in inspect.getmembers(models, inspect.isclass)
              if issubclass(model, BaseModel) and model is not BaseModel
              for field in model._meta.sorted_fields if isinstance(field, JSONField)]
    assert len(fields) >= 15
    for field in fields:
        empty = field.empty() if callable(field.empty) else field.empty
        sample = [] if field.empty is list else {"a": 1} if field.empty is dict else "text"
        assert field.python_value("") == empty and field.python_value(None) == empty, field
        assert field.python_value(json.dumps(sample)) == sample, field
        assert field.python_value(field.db_value(sample)) == sample, field
