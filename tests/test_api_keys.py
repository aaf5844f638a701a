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
    # A minute later the next use writes again (the process's copy of the key says when it last wrote).
    later = utcnow() + datetime.timedelta(seconds=61)
    keys.authenticate(raw, now=later)
    assert raw_row(key.id)["last_used_at"] == later


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


# --- The settings page ----------------------------------------------------------

def page_text(response):
    return response.get_data(as_text=True)


def test_empty_page_says_what_a_key_is_for_and_links_the_reference(app, web, admin):
    page = soup(web.get("/api-keys/"))
    empty = page.select_one("#api-keys-empty")
    assert "Connect your product to Loft" in empty.text
    assert empty.select_one("a")["href"] == "/api/v1/docs"
    assert [o["value"] for o in page.select("#f-role option")] == ["", "admin", "manager", "author", "guest"]
    assert [o.text for o in page.select("#f-role option")][1:] == ["Administrator", "Manager", "Author", "Guest"]


def test_the_page_is_in_the_navigation_for_administrators_only(app, web, admin):
    team = Team.get(Team.name == "Acme")
    assert soup(web.get("/dashboard")).select('nav a[href="/api-keys/"]')
    for page in ("/teams/members", "/teams/settings"):
        assert soup(web.get(page)).select('main a[href="/api-keys/"]'), page
    _, manager = make_member(app, team, "manager")
    assert not soup(manager.get("/dashboard")).select('nav a[href="/api-keys/"]')
    for page in ("/teams/members", "/teams/settings"):
        assert not soup(manager.get(page)).select('a[href="/api-keys/"]'), page


def test_create_shows_the_key_once_and_lists_it(app, web, admin):
    response = web.post("/api-keys/new", {"name": "Shop sign-ups", "role": "manager"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = soup(response)
    shown = page.select_one("#new-api-key")
    raw = shown["value"]
    assert raw.startswith("loft_") and shown.has_attr("autofocus") and shown.has_attr("readonly")
    assert page.select_one("#new-key")["hx-history"] == "false"  # never kept in htmx's history cache
    assert page.select_one('label[for="new-api-key"]').text.strip() == "API key “Shop sign-ups” (Manager)"
    assert page.select_one('button[data-copy="#new-api-key"]').text == "Copy the key"
    with app.app_context():
        key = ApiKey.get(ApiKey.name == "Shop sign-ups")
        assert key.role == "manager" and key.created_by_id == admin.id
        assert all(raw not in str(value) for value in raw_row(key.id).values())
    # Never again: not on the page, nor in any answer after this one.
    again = web.get("/api-keys/")
    assert raw not in page_text(again) and raw[12:] not in page_text(again)
    row = soup(again).select_one(f"#api-key-{key.id}")
    assert "Shop sign-ups" in row.text and "Manager" in row.text and raw[:12] + "…" in row.text
    assert "by Ada" in row.text and "Never" in row.text and "Active" in row.text
    assert soup(again).select_one("#new-api-key") is None
    with app.app_context():
        assert keys.authenticate(raw).id == key.id
    used = soup(web.get("/api-keys/")).select_one(f"#api-key-{key.id} td[data-label='Last used']")
    assert "Never" not in used.text and "UTC" in used.text


def test_create_through_htmx_answers_the_fragment(app, web, admin):
    response = web.post("/api-keys/new", {"name": "Nightly export", "role": "guest"}, htmx=True)
    assert response.status_code == 200
    fragment = soup(response)
    assert fragment.select_one("html") is None and fragment.select_one("#api-keys #new-api-key")["value"]
    assert "Nightly export" in fragment.select_one("#api-key-list").text


@pytest.mark.parametrize("form, field, message", [
    ({"name": "", "role": "guest"}, "name", "Give the key a name"),
    ({"name": "script", "role": ""}, "role", "Choose one of the roles"),
    ({"name": "script", "role": "owner"}, "role", "Choose one of the roles"),
    ({"name": "x" * 101, "role": "guest"}, "name", "under 100 characters"),
])
def test_bad_input_is_shown_at_its_field_and_nothing_is_made(app, web, admin, form, field, message):
    response = web.post("/api-keys/new", form, htmx=True)
    assert response.status_code == 422
    page = soup(response)
    assert message in page.select_one(f"#e-{field}").text
    assert page.select_one(f"#f-{field}")["aria-invalid"] == "true"
    assert page.select_one("#f-name")["value"] == form["name"]  # the input is kept
    assert page.select_one("#new-api-key") is None
    with app.app_context():
        assert ApiKey.select().count() == 0


def test_revoke_through_the_page(app, web, admin):
    web.post("/api-keys/new", {"name": "Old script", "role": "author"})
    with app.app_context():
        key = ApiKey.get(ApiKey.name == "Old script")
    form = soup(web.get("/api-keys/")).select_one(f'form[action="/api-keys/{key.id}/revoke"]')
    assert "Revoke the key “Old script”?" in form.select_one("button")["data-confirm"]
    response = web.post(f"/api-keys/{key.id}/revoke", follow_redirects=True)
    assert "Key “Old script” revoked" in page_text(response)
    row = soup(response).select_one(f"#api-key-{key.id}")
    assert "Revoked" in row.text and row.select_one("form") is None
    with app.app_context():
        assert ApiKey.get_by_id(key.id).revoked_at is not None


def test_revoke_needs_the_csrf_token(app, web, admin, client):
    web.post("/api-keys/new", {"name": "script", "role": "author"})
    with app.app_context():
        key = ApiKey.get(ApiKey.name == "script")
    assert client.post(f"/api-keys/{key.id}/revoke").status_code in (400, 403)
    with app.app_context():
        assert ApiKey.get_by_id(key.id).revoked_at is None


def test_another_teams_key_is_404_on_revoke(app, web, admin):
    with app.app_context():
        other = Team.create(name="Other")
        theirs, raw = keys.create_key(other, name="theirs", role="admin")
    assert web.post(f"/api-keys/{theirs.id}/revoke").status_code == 404
    assert web.post("/api-keys/999999/revoke").status_code == 404
    with app.app_context():
        assert keys.authenticate(raw) is not None
    assert "theirs" not in page_text(web.get("/api-keys/"))


@pytest.mark.parametrize("role", ["manager", "author", "guest"])
def test_only_administrators_reach_the_page(app, admin, role):
    team = Team.get(Team.name == "Acme")
    with app.app_context():
        key, _ = keys.create_key(team, name="script", role="guest")
    _, member = make_member(app, team, role)
    assert member.get("/api-keys/").status_code == 403
    assert member.post("/api-keys/new", {"name": "mine", "role": "admin"}).status_code == 403
    assert member.post(f"/api-keys/{key.id}/revoke").status_code == 403
    with app.app_context():
        assert ApiKey.select().count() == 1 and ApiKey.get_by_id(key.id).revoked_at is None


def test_a_team_administrator_who_is_not_the_instance_admin_may_manage_keys(app, admin):
    team = Team.get(Team.name == "Acme")
    user, team_admin = make_member(app, team, "admin", "teamadmin@example.com")
    response = team_admin.post("/api-keys/new", {"name": "theirs", "role": "Manager"})
    assert response.status_code == 200 and soup(response).select_one("#new-api-key")


# --- The CLI --------------------------------------------------------------------

def cli(app, *args):
    return app.test_cli_runner().invoke(args=["api-keys", *args])


@pytest.mark.parametrize("team_arg", ["Acme", "acme", "id"])
def test_cli_create_prints_json_with_a_key_that_authenticates(app, admin, team_arg):
    team = Team.get(Team.name == "Acme")
    result = cli(app, "create", "--team", str(team.id) if team_arg == "id" else team_arg,
                 "--role", "Manager", "--name", "Deploy script")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert set(printed) == {"id", "key"}
    with app.app_context():
        key = keys.authenticate(printed["key"])
        assert key.id == printed["id"] and key.team_id == team.id and key.role == "manager"
        assert key.name == "Deploy script" and key.created_by is None


@pytest.mark.parametrize("args, message", [
    (["--team", "Nobody", "--role", "Manager", "--name", "x"], "There is no team named or numbered 'Nobody'."),
    (["--team", "9999", "--role", "Manager", "--name", "x"], "There is no team named or numbered '9999'."),
    (["--team", "Acme", "--role", "Owner", "--name", "x"], "Choose one of the roles: Administrator, Manager"),
    (["--team", "Acme", "--role", "Manager", "--name", " "], "Give the key a name"),
    (["--team", "Acme", "--role", "Manager"], "Missing option '--name'"),
])
def test_cli_bad_input_exits_non_zero_with_a_message(app, admin, args, message):
    result = cli(app, "create", *args)
    assert result.exit_code != 0
    assert message in result.output
    with app.app_context():
        assert ApiKey.select().count() == 0


def test_cli_two_teams_of_one_name_need_the_id(app, admin):
    with app.app_context():
        Team.create(name="Acme")
    result = cli(app, "create", "--team", "Acme", "--role", "Guest", "--name", "x")
    assert result.exit_code != 0 and "Several teams are named 'Acme'" in result.output


def test_cli_list_and_revoke(app, admin):
    first = json.loads(cli(app, "create", "--team", "Acme", "--role", "guest", "--name", "one").output)
    second = json.loads(cli(app, "create", "--team", "Acme", "--role", "author", "--name", "two").output)
    result = cli(app, "revoke", str(first["id"]))
    assert result.exit_code == 0 and json.loads(result.output)["revoked_at"]
    listed = [json.loads(line) for line in cli(app, "list", "--team", "Acme").output.splitlines()]
    assert [(k["id"], k["name"], k["role"], bool(k["revoked_at"])) for k in listed] == [
        (second["id"], "two", "Author", False), (first["id"], "one", "Guest", True)]
    assert all(first["key"] not in json.dumps(k) and second["key"] not in json.dumps(k) for k in listed)
    with app.app_context():
        assert keys.authenticate(first["key"]) is None and keys.authenticate(second["key"]) is not None
    missing = cli(app, "revoke", "9999")
    assert missing.exit_code != 0 and "There is no API key with the id 9999." in missing.output


def test_a_key_made_on_the_page_calls_the_api_until_it_is_revoked(app, web, admin, public):
    raw = soup(web.post("/api-keys/new", {"name": "Shop", "role": "guest"})).select_one("#new-api-key")["value"]
    bearer = {"Authorization": f"Bearer {raw}"}
    assert public.get("/api/v1/contacts", headers=bearer).status_code == 200
    with app.app_context():
        key = ApiKey.get(ApiKey.name == "Shop")
    used = soup(web.get("/api-keys/")).select_one(f"#api-key-{key.id} td[data-label='Last used']")
    assert "Never" not in used.text
    # A Guest key may read, not write: the role decides, as for a member.
    assert public.post("/api/v1/contacts", json={"email": "ann@example.com"}, headers=bearer).status_code == 403
    web.post(f"/api-keys/{key.id}/revoke")
    assert public.get("/api/v1/contacts", headers=bearer).status_code == 401
