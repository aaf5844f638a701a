"""/api/v1/webhooks: outgoing webhook endpoints through the API, against a real HTTP receiver on 127.0.0.1:
the secret answered once, the SSRF guard on every URL, test deliveries, other teams' ids, Administrators only."""
import pytest

from app.models import WEBHOOK_EVENT_TYPES
from app.models import Team
from app.models import WebhookDelivery
from app.models import WebhookEndpoint
from app.webhooks import delivery

PROBLEM = "application/problem+json"
PUBLIC_URL = "https://93.184.216.34/hooks"  # a public address given as such: no DNS answer is needed


@pytest.fixture
def private_ok(ctx):
    """The instance allows private targets, so the receiver on loopback can be used."""
    ctx.config["WEBHOOKS_ALLOW_PRIVATE"] = True
    yield
    ctx.config["WEBHOOKS_ALLOW_PRIVATE"] = False


def refused(response, status=422):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    return response.get_json()


def test_create_reveals_the_secret_once_and_a_test_event_is_signed_with_it(api, receiver, private_ok):
    server = receiver(204)
    created = api.post("/api/v1/webhooks", json={"url": server.url, "description": "CRM",
                                                 "event_types": ["clicked", "opened"]})
    assert created.status_code == 201, created.get_data(as_text=True)
    endpoint = created.get_json()
    secret = endpoint.pop("secret")
    assert secret.startswith("whsec_")
    assert endpoint["event_types"] == ["opened", "clicked"]  # in the order of the types, like the page stores them
    assert endpoint["enabled"] is True and endpoint["deliveries"] == {} and endpoint["url"] == server.url
    fetched = api.get(f"/api/v1/webhooks/{endpoint['id']}").get_json()
    assert fetched == endpoint and "secret" not in fetched
    assert api.get("/api/v1/webhooks").get_json()["data"] == [endpoint]
    assert secret not in api.get("/api/v1/webhooks").get_data(as_text=True)

    tested = api.post(f"/api/v1/webhooks/{endpoint['id']}/test")
    assert tested.status_code == 200, tested.get_data(as_text=True)
    answer = tested.get_json()
    assert answer["delivered"] is True and answer["status"] == "delivered" and answer["status_code"] == 204
    assert answer["error"] == ""
    request = server.requests[-1]
    assert request["headers"]["X-Loft-Event"] == "test"
    assert delivery.verify(secret, request["headers"]["X-Loft-Timestamp"], request["body"],
                           request["headers"]["X-Loft-Signature"])
    assert WebhookDelivery.get_by_id(answer["id"]).endpoint_id == endpoint["id"]
    assert api.get(f"/api/v1/webhooks/{endpoint['id']}").get_json()["deliveries"] == {"delivered": 1}


def test_a_test_event_the_endpoint_refuses_is_pending_with_the_reason(api, receiver, private_ok):
    server = receiver(500)
    endpoint_id = api.post("/api/v1/webhooks", json={"url": server.url}).get_json()["id"]
    answer = api.post(f"/api/v1/webhooks/{endpoint_id}/test").get_json()
    assert answer["delivered"] is False and answer["status"] == "pending" and answer["status_code"] == 500
    assert "500" in answer["error"]
    assert len(server.requests) == 1


@pytest.mark.parametrize("url, words", [
    ("http://127.0.0.1:8025/hook", "loopback"),
    ("http://10.0.0.5/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::1]/hook", "loopback"),
    ("ftp://93.184.216.34/", "https://"),
    ("https://user:secret@93.184.216.34/", "user name or password"),
])
def test_a_private_or_unusable_url_is_refused_at_the_url(api, url, words):
    body = refused(api.post("/api/v1/webhooks", json={"url": url, "event_types": ["opened"]}))
    assert set(body["errors"]) == {"url"} and words in body["errors"]["url"]
    assert WebhookEndpoint.select().count() == 0


def test_a_change_goes_through_the_guard_too_and_a_refused_one_changes_nothing(api):
    endpoint = api.post("/api/v1/webhooks", json={"url": PUBLIC_URL, "event_types": ["opened"]}).get_json()
    body = refused(api.patch(f"/api/v1/webhooks/{endpoint['id']}",
                             json={"url": "http://192.168.1.1/", "description": "LAN"}))
    assert "private" in body["errors"]["url"]
    stored = WebhookEndpoint.get_by_id(endpoint["id"])
    assert stored.url == PUBLIC_URL and stored.description == ""


def test_update_changes_only_what_is_given(api):
    endpoint = api.post("/api/v1/webhooks", json={"url": PUBLIC_URL, "description": "CRM",
                                                  "event_types": ["bounced"]}).get_json()
    changed = api.patch(f"/api/v1/webhooks/{endpoint['id']}", json={"description": "Warehouse"})
    assert changed.status_code == 200, changed.get_data(as_text=True)
    endpoint.pop("secret")
    assert changed.get_json() == {**endpoint, "description": "Warehouse"}
    stored = WebhookEndpoint.get_by_id(endpoint["id"])
    assert (stored.url, stored.description, stored.event_types, stored.enabled) == (
        PUBLIC_URL, "Warehouse", ["bounced"], True)
    disabled = api.patch(f"/api/v1/webhooks/{endpoint['id']}", json={"enabled": False}).get_json()
    assert disabled["enabled"] is False and disabled["description"] == "Warehouse"
    both = api.patch(f"/api/v1/webhooks/{endpoint['id']}", json={"enabled": True,
                                                                 "event_types": ["opened", "bounced"]}).get_json()
    assert both["enabled"] is True and both["event_types"] == ["bounced", "opened"]


def test_event_types_are_checked(api):
    body = refused(api.post("/api/v1/webhooks", json={"url": PUBLIC_URL, "event_types": ["opened", "bogus"]}))
    assert set(body["errors"]) == {"event_types.1"}
    body = refused(api.post("/api/v1/webhooks", json={"url": PUBLIC_URL, "event_types": []}))
    assert body["errors"] == {"event_types": "Choose at least one event type to send."}
    every = api.post("/api/v1/webhooks", json={"url": PUBLIC_URL}).get_json()
    assert every["event_types"] == list(WEBHOOK_EVENT_TYPES)


def test_delete_removes_the_endpoint_and_its_log(api, receiver, private_ok):
    server = receiver(200)
    endpoint_id = api.post("/api/v1/webhooks", json={"url": server.url}).get_json()["id"]
    api.post(f"/api/v1/webhooks/{endpoint_id}/test")
    assert api.delete(f"/api/v1/webhooks/{endpoint_id}").status_code == 204
    assert WebhookEndpoint.get_or_none(WebhookEndpoint.id == endpoint_id) is None
    assert WebhookDelivery.select().where(WebhookDelivery.endpoint == endpoint_id).count() == 0
    refused(api.get(f"/api/v1/webhooks/{endpoint_id}"), 404)


def test_another_teams_endpoint_is_not_found(api, api_key_for, receiver, private_ok):
    server = receiver(200)
    outsider = api_key_for("admin", Team.create(name="Other"))
    theirs = outsider.post("/api/v1/webhooks", json={"url": server.url}).get_json()["id"]
    for method, path, body in (("GET", f"/api/v1/webhooks/{theirs}", None),
                               ("PATCH", f"/api/v1/webhooks/{theirs}", {"description": "Mine"}),
                               ("DELETE", f"/api/v1/webhooks/{theirs}", None),
                               ("POST", f"/api/v1/webhooks/{theirs}/test", None)):
        refused(api.call(method, path, json=body), 404)
    assert server.requests == []
    assert WebhookEndpoint.get_by_id(theirs).description == ""
    assert api.get("/api/v1/webhooks").get_json()["data"] == []


@pytest.mark.parametrize("role", ["manager", "author", "guest"])
def test_only_administrators_manage_webhooks_as_on_the_pages(api_key_for, role):
    client = api_key_for(role)
    assert "manage_domains" in refused(client.get("/api/v1/webhooks"), 403)["detail"]
    refused(client.post("/api/v1/webhooks", json={"url": PUBLIC_URL}), 403)
    assert WebhookEndpoint.select().count() == 0
