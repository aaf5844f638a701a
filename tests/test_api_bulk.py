"""Bulk upsert through the API: the rows run through the CSV import's task, and the job tells how it went."""
from app.models import Contact
from app.models import ImportJob
from app.models import Subscription
from app.models import Team

PROBLEM = "application/problem+json"


def test_bulk_upsert_adds_updates_and_reports_through_the_job(api):
    api.post("/api/v1/fields", json={"label": "Plan"})
    news = api.post("/api/v1/lists", json={"name": "News"}).get_json()
    existing = api.post("/api/v1/contacts", json={"email": "old@example.com", "name": "Old"}).get_json()
    body = {"contacts": [{"email": "old@example.com", "name": "Renamed", "fields": {"plan": "pro"}},
                         {"email": "New1@Example.com", "tags": ["vip", "beta"]},
                         {"email": "new2@example.com", "fields": {"plan": None}},
                         {"email": "not an address"},
                         {"email": "new2@example.com"}],
            "lists": [news["id"]]}
    response = api.post("/api/v1/contacts/bulk", json=body)
    assert response.status_code == 202, response.get_data(as_text=True)
    job = response.get_json()
    polled = api.get(f"/api/v1/jobs/{job['id']}").get_json()  # the test queue runs the task at once
    assert polled["status"] == "done", polled
    assert (polled["rows"], polled["created"], polled["updated"], polled["rejected"], polled["duplicates"]) == \
        (5, 2, 1, 1, 1)
    renamed = api.get(f"/api/v1/contacts/{existing['id']}").get_json()
    assert renamed["name"] == "Renamed" and renamed["fields"] == {"plan": "pro"}
    new1 = api.get("/api/v1/contacts/by-email/new1@example.com").get_json()
    assert sorted(new1["tags"]) == ["beta", "vip"]
    assert Subscription.select().where(Subscription.list == news["id"]).count() == 3


def test_add_only_leaves_existing_contacts_alone(api):
    api.post("/api/v1/contacts", json={"email": "keep@example.com", "name": "Keep"})
    job = api.post("/api/v1/contacts/bulk", json={"contacts": [{"email": "keep@example.com", "name": "Changed"}],
                                                  "update_existing": False}).get_json()
    polled = api.get(f"/api/v1/jobs/{job['id']}").get_json()
    assert polled["created"] == 0 and polled["updated"] == 0
    assert Contact.get(Contact.email == "keep@example.com").name == "Keep"


def test_a_bulk_request_is_refused_whole_and_leaves_no_job(api, api_key_for):
    too_many = {"contacts": [{"email": f"c{i}@example.com"} for i in range(10_001)]}
    response = api.post("/api/v1/contacts/bulk", json=too_many)
    assert response.status_code == 422 and response.mimetype == PROBLEM
    assert "contacts" in response.get_json()["errors"]
    response = api.post("/api/v1/contacts/bulk", json={"contacts": [{"email": "a@example.com"}], "lists": [999999]})
    assert response.status_code == 422 and "lists" in response.get_json()["errors"]
    response = api.post("/api/v1/contacts/bulk", json={"contacts": [{"email": "a@example.com",
                                                                     "fields": {"nope": 1}}]})
    assert response.get_json()["errors"] == {"fields.nope": "no such custom field"}
    assert ImportJob.select().count() == 0 and Contact.select().count() == 0


def test_another_teams_job_is_not_found(api, api_key_for):
    outsider = api_key_for("admin", Team.create(name="Other"))
    job = outsider.post("/api/v1/contacts/bulk", json={"contacts": [{"email": "x@example.com"}]}).get_json()
    assert api.get(f"/api/v1/jobs/{job['id']}").status_code == 404
