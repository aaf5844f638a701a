"""The /api/v1 frame: Bearer keys, roles on every operation, other teams' ids, problem+json, the rate limit,
Idempotency-Key (also two identical POSTs at once, on two real threads), cursor pages, the size limit,
and the OpenAPI document with its reference page."""
import threading

import pytest
from werkzeug.serving import make_server

from app.api import idempotency
from app.api import keys
from app.api.framework import bp
from app.models import ApiRateWindow
from app.models import Contact
from app.models import IdempotencyRecord
from app.models import MailingList
from app.models import Team
from app.teams.permissions import can
from tests.conftest import soup

PROBLEM = "application/problem+json"


def assert_problem(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == status and body["title"] and body["detail"] and isinstance(body["errors"], dict)
    return body


# --- Keys -----------------------------------------------------------------------------------------

def test_a_request_without_a_key_is_401_with_www_authenticate(api):
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}):
        response = api.client.get("/api/v1/contacts", headers=headers)
        body = assert_problem(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in body["detail"]


def test_a_malformed_unknown_or_revoked_key_is_401(api, api_key_for):
    other = api_key_for("admin")
    keys.revoke_key(other.key.team, other.key.id)
    for raw in ("loft_short", "loft_" + "x" * 43, other.raw_key):
        response = api.client.get("/api/v1/contacts", headers={"Authorization": f"Bearer {raw}"})
        assert_problem(response, 401)
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert api.get("/api/v1/contacts").status_code == 200


def test_a_signed_in_browser_without_a_key_gets_401_not_its_session(app, web, admin):
    """The session cookie opens no door here, and a POST without a CSRF token is refused for the key, not
    the token (no CSRF check applies: the API reads no cookie)."""
    assert web.get("/contacts/").status_code == 200  # the session works on the pages
    assert_problem(web.client.get("/api/v1/contacts"), 401)
    response = web.client.post("/api/v1/contacts", json={"email": "csrf@example.com"})
    assert_problem(response, 401)
    assert Contact.select().where(Contact.email == "csrf@example.com").count() == 0


# --- Roles: every registered operation, every role --------------------------------------------------

def api_operations(app):
    """(method, rule, permission) of every registered API operation, from the app's routes."""
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        permission = getattr(view, "api_permission", None)
        if permission:
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                yield method, rule, permission


def concrete(rule):
    """A URL for `rule` with every argument filled (ids that do not exist: only the role check is asked)."""
    text = rule.rule
    for name in rule.arguments:
        value = "someone@example.com" if name == "email" else "999999"
        for converter in ("int:", "path:", ""):
            text = text.replace(f"<{converter}{name}>", value)
    return text


@pytest.mark.parametrize("role", ["admin", "manager", "author", "guest"])
def test_each_role_against_every_operation(app, api_key_for, role):
    client = api_key_for(role)
    checked = 0
    for method, rule, permission in api_operations(app):
        response = client.call(method, concrete(rule), json={} if method in ("POST", "PATCH", "PUT") else None)
        allowed = can(role, permission)
        if allowed:
            assert response.status_code != 403, (role, method, rule.rule, response.get_data(as_text=True))
        else:
            body = assert_problem(response, 403)
            assert permission in body["detail"], body
        checked += 1
    assert checked >= 6


def test_every_api_view_declares_its_permission(app):
    for endpoint, view in app.view_functions.items():
        if endpoint.startswith(bp.name + "."):
            assert getattr(view, "api_permission", None) or getattr(view, "public", False), endpoint


# --- Other teams ----------------------------------------------------------------------------------

def test_another_teams_ids_are_not_found(api, api_key_for):
    other_team = Team.create(name="Other")
    outsider = api_key_for("admin", other_team)
    contact_id = outsider.post("/api/v1/contacts", json={"email": "theirs@example.com"}).get_json()["id"]
    for method, path in (("GET", f"/api/v1/contacts/{contact_id}"), ("PATCH", f"/api/v1/contacts/{contact_id}"),
                         ("DELETE", f"/api/v1/contacts/{contact_id}"),
                         ("GET", "/api/v1/contacts/by-email/theirs@example.com")):
        assert_problem(api.call(method, path, json={"name": "Mine now"} if method == "PATCH" else None), 404)
    assert Contact.get_by_id(contact_id).name == ""
    other_list = MailingList.create(team=other_team, name="Theirs")
    assert_problem(api.get(f"/api/v1/contacts?list={other_list.id}"), 404)
    for huge in (2**31, 2**70):  # past any row id: not found, never the database's overflow
        assert_problem(api.get(f"/api/v1/contacts/{huge}"), 404)
        assert_problem(api.get(f"/api/v1/campaigns/{huge}"), 404)


# --- Problems -------------------------------------------------------------------------------------

def test_validation_errors_name_each_field(api):
    body = assert_problem(api.post("/api/v1/contacts", json={"email": 5, "nmae": "x", "lists": "1"}), 422)
    assert set(body["errors"]) == {"email", "nmae", "lists"}
    body = assert_problem(api.post("/api/v1/contacts", json={"email": "not an address"}), 422)
    assert "not valid" in body["errors"]["email"]
    body = assert_problem(api.get("/api/v1/contacts?limit=501&status=gone"), 422)
    assert set(body["errors"]) == {"limit", "status"}


def test_a_body_that_is_not_json_is_refused_for_what_it_is(api):
    response = api.call("POST", "/api/v1/contacts", data="{not json", headers={"Content-Type": "application/json"})
    assert assert_problem(response, 400)["errors"] == {"body": "not valid JSON"}
    response = api.call("POST", "/api/v1/contacts", data="email=a@example.com",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_problem(response, 415)


def test_unknown_paths_and_methods_under_the_api_are_problems(api):
    assert_problem(api.get("/api/v1/nothing-here"), 404)
    response = api.call("PUT", "/api/v1/contacts")
    assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]


def test_a_body_over_the_size_limit_is_413(app, api):
    app.config["MAX_CONTENT_LENGTH"] = 2048
    response = api.post("/api/v1/contacts", json={"email": "big@example.com", "name": "x" * 4096})
    assert_problem(response, 413)
    assert Contact.select().count() == 0


# --- Rate limit -----------------------------------------------------------------------------------

def test_the_rate_limit_answers_429_with_retry_after_per_key(app, api, api_key_for):
    app.config["API_RATE_PER_MINUTE"] = 3
    other = api_key_for("guest")
    statuses = [api.get("/api/v1/contacts").status_code for _ in range(3)]
    response = api.get("/api/v1/contacts")
    assert statuses == [200, 200, 200]
    assert_problem(response, 429)
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert other.get("/api/v1/contacts").status_code == 200  # per key
    window = ApiRateWindow.get(ApiRateWindow.api_key == api.key.id)
    assert window.hits == 4


def test_a_new_minute_starts_a_new_window_and_drops_the_old(ctx, api):
    from app.api import ratelimit
    assert ratelimit.hit(api.key, 1, now=600.0) == 0
    assert ratelimit.hit(api.key, 1, now=630.0) == 30
    assert ratelimit.hit(api.key, 1, now=660.5) == 0
    assert [w.window for w in ApiRateWindow.select().where(ApiRateWindow.api_key == api.key.id)] == [11]


# --- Idempotency ----------------------------------------------------------------------------------

def test_a_retry_with_the_same_key_and_body_replays_the_answer(api):
    headers = {"Idempotency-Key": "signup-42"}
    first = api.post("/api/v1/contacts", json={"email": "once@example.com"}, headers=headers)
    again = api.post("/api/v1/contacts", json={"email": "once@example.com"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert Contact.select().where(Contact.email == "once@example.com").count() == 1


def test_the_same_key_with_another_body_is_422(api):
    headers = {"Idempotency-Key": "k1"}
    assert api.post("/api/v1/contacts", json={"email": "one@example.com"}, headers=headers).status_code == 201
    body = assert_problem(api.post("/api/v1/contacts", json={"email": "two@example.com"}, headers=headers), 422)
    assert "Idempotency-Key" in body["errors"]
    assert Contact.select().where(Contact.email == "two@example.com").count() == 0


def test_a_refused_request_lets_its_key_go_so_the_fixed_retry_runs(api):
    headers = {"Idempotency-Key": "fix-me"}
    assert_problem(api.post("/api/v1/contacts", json={"email": "broken"}, headers=headers), 422)
    assert api.post("/api/v1/contacts", json={"email": "broken"}, headers=headers).status_code == 422
    assert IdempotencyRecord.select().count() == 0


def test_keys_are_per_api_key(api, api_key_for):
    other = api_key_for("admin")
    headers = {"Idempotency-Key": "shared-name"}
    assert api.post("/api/v1/contacts", json={"email": "a1@example.com"}, headers=headers).status_code == 201
    assert other.post("/api/v1/contacts", json={"email": "a2@example.com"}, headers=headers).status_code == 201


def test_two_identical_posts_at_once_run_once(app, api, monkeypatch):
    """Two real HTTP requests on two threads of a real server, the first held inside its view until the
    second has arrived: one contact, and both get the same answer (the second replayed it after waiting)."""
    import requests
    arrived = threading.Event()
    release = threading.Event()
    original_claim = idempotency._claim

    def slow_claim(api_key, key, asked):
        record = original_claim(api_key, key, asked)
        if record.status is None and not release.is_set():
            arrived.set()
            release.wait(10)  # hold the first request until the second is waiting on its record
        return record

    monkeypatch.setattr(idempotency, "_claim", slow_claim)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/api/v1/contacts"
    headers = {"Authorization": f"Bearer {api.raw_key}", "Idempotency-Key": "twice"}
    answers = [None, None]

    def post(index):
        answers[index] = requests.post(url, json={"email": "race@example.com"}, headers=headers, timeout=20)

    first = threading.Thread(target=post, args=(0,))
    first.start()
    assert arrived.wait(10)
    second = threading.Thread(target=post, args=(1,))
    second.start()
    second.join(0.5)  # the second is now polling for the first one's answer
    release.set()
    first.join(20)
    second.join(20)
    server.shutdown()
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    assert answers[0].json() == answers[1].json()
    assert answers[1].headers.get("Idempotent-Replayed") == "true"
    assert Contact.select().where(Contact.email == "race@example.com").count() == 1


def test_a_second_request_gives_up_with_409_while_the_first_runs(ctx, api, monkeypatch):
    monkeypatch.setattr(idempotency, "WAIT_SECONDS", 0)
    IdempotencyRecord.create(api_key=api.key.id, key="busy", fingerprint=_fingerprint_of(ctx, api))
    response = api.post("/api/v1/contacts", json={"email": "busy@example.com"}, headers={"Idempotency-Key": "busy"})
    assert_problem(response, 409)
    assert response.headers["Retry-After"] == "1"
    assert Contact.select().count() == 0


def _fingerprint_of(app, api):
    with app.test_request_context("/api/v1/contacts", method="POST", json={"email": "busy@example.com"}):
        return idempotency.fingerprint()


# --- Pages ----------------------------------------------------------------------------------------

def test_pagination_walks_every_contact_once(api):
    team = api.key.team
    Contact.insert_many([{"team": team.id, "email": f"p{i}@example.com", "domain": "example.com",
                          "attributes": {}} for i in range(23)]).execute()
    seen, url, pages = [], "/api/v1/contacts?limit=5&status=active", 0
    while url:
        body = api.get(url).get_json()
        seen += [contact["id"] for contact in body["data"]]
        assert len(body["data"]) <= 5
        url = body["next"]
        pages += 1
    assert pages == 5
    assert len(seen) == len(set(seen)) == 23
    assert seen == sorted(seen, reverse=True)


def test_a_forged_cursor_is_400(api):
    body = assert_problem(api.get("/api/v1/contacts?cursor=bm9wZQ"), 400)
    assert "cursor" in body["errors"]


# --- The document and its reference page ------------------------------------------------------------

def test_the_openapi_document_is_public_and_lists_every_operation(app, public):
    document = public.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    operations = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    for method, rule, _ in api_operations(app):
        path = rule.rule.replace("<int:", "{").replace("<path:", "{").replace("<", "{").replace(">", "}")
        assert (method, path) in operations
    assert document["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert "ProblemOut" in document["components"]["schemas"]


def test_the_reference_page_shows_every_operation_without_outside_assets(app, public):
    response = public.get("/api/v1/docs")
    assert response.status_code == 200
    page = soup(response)
    shown = {section.select_one("h2").text for section in page.select("section.api-operation")}
    for method, rule, _ in api_operations(app):
        path = rule.rule.replace("<int:", "{").replace("<path:", "{").replace("<", "{").replace(">", "}")
        assert f"{method} {path}" in shown
    assert not page.select("script")
    assert all(link["href"].startswith("/") for link in page.select("link[href]"))
