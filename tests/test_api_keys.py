"""API keys: the service (create, authenticate, revoke, list), the settings page and the CLI."""
import datetime
import json

import pytest

from app import tokens
from app.api import keys
from app.models import ApiKey
from app.models import AuditLog
from app.models import Team
from app.models import User
from app.models import utcnow
from tests.accounts_support import make_member
from tests.conftest import soup


@pytest.fixture
def acme(ctx, admin):
    return Team.get(Team.name == "Acme")


def raw_row(key_id):
    """Every column of the stored row, as the database has it."""
    return ApiKey.select().where(ApiKey.id == key_id).dicts().get()


# --- The service ----------------------------------------------------------------

def test_create_key_returns_the_raw_key_once_and_stores_only_its_digest(acme, admin):
    key, raw = keys.create_key(acme, name="Shop sign-ups", role="manager", created_by=admin)
    assert raw.startswith("loft_") and len(raw) == 48
    assert key.prefix == raw[:12] and key.role == "manager" and key.role_label == "Manager"
    row = raw_row(key.id)
    assert row["key_hash"] == tokens.api_key_digest(raw)
    assert all(raw not in str(value) for value in row.values())
    assert raw[12:] not in json.dumps(row, default=str)
    assert row["created_by"] == admin.id and row["last_used_at"] is None and row["revoked_at"] is None
    assert AuditLog.get(AuditLog.target == f"api_key:{key.id}").action == "api_key.created"


def test_each_key_is_different(acme):
    made = {keys.create_key(acme, name=f"k{i}", role="guest")[1] for i in range(5)}
    assert len(made) == 5


@pytest.mark.parametrize("role, stored", [("Administrator", "admin"), ("manager", "manager"),
                                          (" Author ", "author"), ("GUEST", "guest")])
def test_role_is_a_label_or_the_stored_value(acme, role, stored):
    key, _ = keys.create_key(acme, name="script", role=role)
    assert key.role == stored


@pytest.mark.parametrize("name, role, field, message", [
    ("", "guest", "name", "Give the key a name"),
    ("   ", "guest", "name", "Give the key a name"),
    ("x" * 101, "guest", "name", "under 100 characters"),
    ("script", "owner", "role", "Choose one of the roles: Administrator, Manager, Author, Guest."),
    ("script", "", "role", "Choose one of the roles"),
])
def test_bad_input_is_refused_at_its_field_and_nothing_is_stored(acme, name, role, field, message):
    with pytest.raises(keys.ApiKeyError) as refused:
        keys.create_key(acme, name=name, role=role)
    assert refused.value.field == field and message in refused.value.message
    assert refused.value.status == 422
    assert ApiKey.select().count() == 0


def test_a_team_has_a_bounded_number_of_live_keys(acme, monkeypatch):
    monkeypatch.setattr(keys, "MAX_LIVE_KEYS", 2)
    first, _ = keys.create_key(acme, name="one", role="guest")
    keys.create_key(acme, name="two", role="guest")
    with pytest.raises(keys.ApiKeyError, match="at most 2 keys"):
        keys.create_key(acme, name="three", role="guest")
    keys.revoke_key(acme, first.id)
    keys.create_key(acme, name="three", role="guest")  # a revoked key frees its place


def test_authenticate_accepts_a_live_key_with_its_team(acme):
    key, raw = keys.create_key(acme, name="script", role="author")
    found = keys.authenticate(raw)
    assert found.id == key.id and found.role == "author"
    assert found.team.name == "Acme"


@pytest.mark.parametrize("presented", [
    None, "", "loft_", "Bearer loft_x", 12345, "loft_" + "a" * 42, "loft_" + "a" * 44, "loft_" + "a" * 42 + "!",
    "x" * 10_000,
])
def test_authenticate_refuses_malformed_keys(acme, presented):
    keys.create_key(acme, name="script", role="author")
    assert keys.authenticate(presented) is None


def test_authenticate_refuses_an_unknown_well_formed_key(acme):
    _, raw = keys.create_key(acme, name="script", role="author")
    assert keys.authenticate(keys.new_raw_key()) is None
    assert keys.authenticate(raw[:-1] + ("A" if raw[-1] != "A" else "B")) is None


def test_authenticate_refuses_a_revoked_key(acme, admin):
    key, raw = keys.create_key(acme, name="script", role="author")
    revoked = keys.revoke_key(acme, key.id, revoked_by=admin)
    assert revoked.revoked and raw_row(key.id)["revoked_at"] is not None
    assert keys.authenticate(raw) is None
    assert AuditLog.get(AuditLog.action == "api_key.revoked").user_id == admin.id


def test_revoking_twice_keeps_the_first_time(acme):
    key, _ = keys.create_key(acme, name="script", role="author")
    first = keys.revoke_key(acme, key.id).revoked_at
    assert keys.revoke_key(acme, key.id).revoked_at == first
    assert AuditLog.select().where(AuditLog.action == "api_key.revoked").count() == 1


def test_another_teams_key_is_not_found(acme):
    other = Team.create(name="Other")
    theirs, raw = keys.create_key(other, name="theirs", role="admin")
    for key_id in (theirs.id, 999_999, "abc", None):
        with pytest.raises(keys.ApiKeyNotFound) as refused:
            keys.revoke_key(acme, key_id)
        assert refused.value.status == 404
    assert keys.authenticate(raw) is not None  # untouched
    assert keys.team_keys(acme) == []


def test_team_keys_are_newest_first_with_the_revoked_marked(acme):
    old, _ = keys.create_key(acme, name="old", role="guest")
    new, _ = keys.create_key(acme, name="new", role="guest")
    keys.revoke_key(acme, old.id)
    listed = keys.team_keys(acme)
    assert [k.name for k in listed] == ["new", "old"]
    assert [k.revoked for k in listed] == [False, True]


def test_last_used_is_written_on_first_use_then_at_most_once_a_minute(acme):
    key, raw = keys.create_key(acme, name="script", role="author")
    keys.authenticate(raw)
    first = raw_row(key.id)["last_used_at"]
    assert first is not None
    keys.authenticate(raw)
    assert raw_row(key.id)["last_used_at"] == first  # the second call within the minute wrote nothing
    # A minute later the next use writes again.
    ApiKey.update(last_used_at=first - datetime.timedelta(seconds=61)).where(ApiKey.id == key.id).execute()
    keys.authenticate(raw)
    assert raw_row(key.id)["last_used_at"] > first - datetime.timedelta(seconds=61)


def test_touch_writes_once_between_two_workers_holding_the_same_stale_key(acme):
    key, raw = keys.create_key(acme, name="script", role="author")
    worker_a, worker_b = keys.authenticate(raw), ApiKey.get_by_id(key.id)
    now = utcnow() + datetime.timedelta(minutes=5)
    worker_a.last_used_at = worker_b.last_used_at = None  # both loaded it before either wrote
    assert keys.touch(worker_a, now) is True
    assert keys.touch(worker_b, now) is False
    assert raw_row(key.id)["last_used_at"] == now


def test_deleting_the_creator_keeps_the_key(acme):
    user = User.create(email="leaver@example.com", password_hash="x")
    key, raw = keys.create_key(acme, name="script", role="author", created_by=user)
    user.delete_instance()
    assert raw_row(key.id)["created_by"] is None
    assert keys.authenticate(raw).id == key.id
