"""Bulk upsert through the API: the rows run through the import's task, and the job tells how it went, row by row."""
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


def test_the_job_names_each_row_it_refused_or_wrote_in_part_by_index_and_field(api):
    api.post("/api/v1/fields", json={"label": "Score", "type": "number"})
    body = {"contacts": [{"email": "good@example.com", "fields": {"score": 7}},
                         {"email": "not an address"},
                         {"email": "half@example.com", "fields": {"score": "many"}},
                         {"email": "good@example.com"},
                         {"email": "tagged@example.com", "tags": ["fine", "x" * 200]}]}
    job = api.post("/api/v1/contacts/bulk", json=body).get_json()
    polled = api.get(f"/api/v1/jobs/{job['id']}").get_json()
    assert polled["status"] == "done" and polled["created"] == 3, polled
    found = {(error["index"], error["field"]) for error in polled["errors"]}
    assert found == {(1, "email"), (2, "fields.score"), (3, "email"), (4, "tags")}, polled["errors"]
    by_index = {error["index"]: error["message"] for error in polled["errors"]}
    assert "not a valid email address" in by_index[1].lower() and "earlier" in by_index[3]
    assert "many" in by_index[2] and "not a number" in by_index[2]
    half = Contact.get(Contact.email == "half@example.com")
    assert half.attributes == {}  # written without the bad value
    tagged = api.get("/api/v1/contacts/by-email/tagged@example.com").get_json()
    assert tagged["tags"] == ["fine"]


def test_an_update_merges_fields_and_keeps_what_the_row_leaves_out(api):
    api.post("/api/v1/fields", json={"label": "Plan"})
    api.post("/api/v1/fields", json={"label": "City"})
    made = api.post("/api/v1/contacts", json={"email": "ann@example.com", "name": "Ann",
                                              "fields": {"plan": "pro", "city": "Paris"}}).get_json()
    body = {"contacts": [{"email": "ANN@example.com", "fields": {"plan": "free", "city": None}}]}
    job = api.post("/api/v1/contacts/bulk", json=body).get_json()
    polled = api.get(f"/api/v1/jobs/{job['id']}").get_json()
    assert (polled["updated"], polled["errors"]) == (1, []), polled
    ann = api.get(f"/api/v1/contacts/{made['id']}").get_json()
    # Given values win; a missing or null value and an empty name never erase what is stored.
    assert ann["name"] == "Ann" and ann["fields"] == {"plan": "free", "city": "Paris"}
    again = api.post("/api/v1/contacts/bulk", json=body).get_json()
    assert api.get(f"/api/v1/jobs/{again['id']}").get_json()["unchanged"] == 1


def test_suppressed_and_unsubscribed_addresses_are_not_put_on_lists(api):
    news = api.post("/api/v1/lists", json={"name": "News"}).get_json()
    api.post("/api/v1/contacts", json={"email": "gone@example.com"})
    api.post("/api/v1/contacts", json={"email": "listed@example.com"})
    Contact.update(status="unsubscribed").where(Contact.email == "gone@example.com").execute()
    for value in ("listed@example.com", "blocked.example.org"):
        assert api.post("/api/v1/suppressions", json={"value": value}).status_code == 201
    body = {"contacts": [{"email": "gone@example.com", "name": "Gone"}, {"email": "listed@example.com"},
                         {"email": "new@blocked.example.org"}, {"email": "welcome@example.com"}],
            "lists": [news["id"]]}
    job = api.post("/api/v1/contacts/bulk", json=body).get_json()
    polled = api.get(f"/api/v1/jobs/{job['id']}").get_json()
    assert (polled["created"], polled["not_subscribed"]) == (1, 3), polled
    assert {(e["index"], e["field"]) for e in polled["errors"]} == {(0, "lists"), (1, "lists"), (2, "email")}
    subscribed = {s.contact.email for s in Subscription.select().where(Subscription.list == news["id"])}
    assert subscribed == {"welcome@example.com"}
    assert not Contact.select().where(Contact.email == "new@blocked.example.org").exists()
    gone = Contact.get(Contact.email == "gone@example.com")
    assert (gone.status, gone.name) == ("unsubscribed", "Gone")  # updated, never resubscribed
