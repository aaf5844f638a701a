"""A create answers 201 (a bulk job 202) with a Location header naming what it made: fetching it answers
that same object. The OpenAPI document declares the header on each of these answers, and a replayed
Idempotency-Key answer carries it too."""
import pytest

from app.api import framework
from app.models import Team
from app.models import WebhookEndpoint

PUBLIC_URL = "https://93.184.216.34/hooks"  # a public address as such: the SSRF guard needs no DNS answer

CREATES = [
    ("/api/v1/contacts", {"email": "located@example.com"}, "/api/v1/contacts/{id}"),
    ("/api/v1/lists", {"name": "Located"}, "/api/v1/lists/{id}"),
    ("/api/v1/fields", {"label": "Located"}, "/api/v1/fields/{id}"),
    ("/api/v1/segments", {"name": "Located", "rules": {"op": "and", "rules": [
        {"field": "status", "operator": "is", "value": "active"}]}}, "/api/v1/segments/{id}"),
    ("/api/v1/templates", {"name": "Located", "body": "<p>Hello</p>"}, "/api/v1/templates/{id}"),
    ("/api/v1/campaigns", {"name": "Located"}, "/api/v1/campaigns/{id}"),
    ("/api/v1/webhooks", {"url": PUBLIC_URL}, "/api/v1/webhooks/{id}"),
    ("/api/v1/suppressions", {"value": "located@example.net"}, "/api/v1/suppressions/{id}"),
]


@pytest.mark.parametrize("path,body,pattern", CREATES, ids=[create[0].split("/")[-1] for create in CREATES])
def test_a_create_answers_with_the_location_of_what_it_made(api, path, body, pattern):
    created = api.post(path, json=body)
    assert created.status_code == 201, created.get_data(as_text=True)
    made = created.get_json()
    assert created.headers["Location"] == pattern.format(id=made["id"])
    fetched = api.get(created.headers["Location"])
    assert fetched.status_code == 200, fetched.get_data(as_text=True)
    assert fetched.get_json()["id"] == made["id"]
    if path == "/api/v1/webhooks":
        WebhookEndpoint.delete().execute()


def test_a_subscription_and_a_bulk_job_have_their_location(api):
    contact = api.post("/api/v1/contacts", json={"email": "sub@example.com"}).get_json()
    news = api.post("/api/v1/lists", json={"name": "News"}).get_json()
    created = api.post(f"/api/v1/lists/{news['id']}/subscriptions", json={"contact_id": contact["id"]})
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.headers["Location"] == f"/api/v1/lists/{news['id']}/subscriptions/{contact['id']}"
    fetched = api.get(created.headers["Location"])
    assert fetched.status_code == 200 and fetched.get_json() == created.get_json() | {"confirmation_sent": False}
    job = api.post("/api/v1/contacts/bulk", json={"contacts": [{"email": "bulk@example.com"}]})
    assert job.status_code == 202, job.get_data(as_text=True)
    assert job.headers["Location"] == f"/api/v1/jobs/{job.get_json()['id']}"
    assert api.get(job.headers["Location"]).get_json()["id"] == job.get_json()["id"]


def test_a_subscription_that_does_not_exist_is_404(api):
    contact = api.post("/api/v1/contacts", json={"email": "off@example.com"}).get_json()
    news = api.post("/api/v1/lists", json={"name": "News"}).get_json()
    response = api.get(f"/api/v1/lists/{news['id']}/subscriptions/{contact['id']}")
    assert response.status_code == 404 and "is not on" in response.get_json()["detail"]


def test_another_teams_field_suppression_and_subscription_are_not_found(api, api_key_for):
    other = api_key_for("admin", Team.create(name="Other team"))
    field = other.post("/api/v1/fields", json={"label": "Theirs"}).get_json()
    entry = other.post("/api/v1/suppressions", json={"value": "theirs@example.com"}).get_json()
    contact = other.post("/api/v1/contacts", json={"email": "member@example.com"}).get_json()
    news = other.post("/api/v1/lists", json={"name": "Theirs"}).get_json()
    other.post(f"/api/v1/lists/{news['id']}/subscriptions", json={"contact_id": contact["id"]})
    for path in (f"/api/v1/fields/{field['id']}", f"/api/v1/suppressions/{entry['id']}",
                 f"/api/v1/lists/{news['id']}/subscriptions/{contact['id']}"):
        assert other.get(path).status_code == 200
        assert api.get(path).status_code == 404, path


def test_a_replayed_create_carries_the_location(api):
    headers = {"Idempotency-Key": "located-once"}
    first = api.post("/api/v1/lists", json={"name": "Once"}, headers=headers)
    again = api.post("/api/v1/lists", json={"name": "Once"}, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"] == f"/api/v1/lists/{first.get_json()['id']}"


def test_the_document_declares_location_on_every_create(api):
    document = api.get("/api/v1/openapi.json").get_json()
    declared = {}
    for path, item in document["paths"].items():
        for method, detail in item.items():
            for code in ("201", "202"):
                if code in detail.get("responses", {}):
                    declared[(method, path)] = "Location" in detail["responses"][code].get("headers", {})
    creates = {("post", path) for path, _, _ in CREATES} | {("post", "/api/v1/contacts/bulk"),
                                                            ("post", "/api/v1/lists/{list_id}/subscriptions")}
    assert creates <= set(declared)
    missing = sorted(operation for operation, has in declared.items() if not has and operation[1] != "/api/v1/tx"
                     and operation != ("post", "/api/v1/campaigns/{campaign_id}/send"))
    assert missing == []
    assert set(framework.LOCATIONS) >= {"create_contact", "create_list", "subscribe", "bulk_upsert"}
