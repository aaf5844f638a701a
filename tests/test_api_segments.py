"""/api/v1/segments: create, read, change and delete segments in the editor's own rule form, the compiler's
refusals at the path of each rule, and counts that equal the segment pages' counts."""
import pytest

from app.models import Campaign
from app.models import Contact
from app.models import CustomField
from app.models import MailingList
from app.models import Segment
from app.models import Subscription
from app.models import Team
from tests.conftest import soup

PROBLEM = "application/problem+json"


def refused(response, status=422):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    return response.get_json()


@pytest.fixture
def acme(ctx, admin):
    """Acme with five contacts, a list of three of them and a number field."""
    team = Team.get(Team.name == "Acme")
    CustomField.create(team=team, key="plan", label="Plan", type="number")
    team.news = MailingList.create(team=team, name="News")
    for index, (email, status, plan) in enumerate([
            ("ann@a.example.com", "active", 1), ("bob@b.example.com", "active", 7),
            ("cat@a.example.com", "bounced", 9), ("dan@d.example.com", "active", None),
            ("eve@e.example.com", "unsubscribed", 4)]):
        contact = Contact.create(team=team, email=email, domain=email.split("@")[1], status=status,
                                 attributes={"plan": plan} if plan is not None else {})
        if index < 3:
            Subscription.create(contact=contact, list=team.news)
    return team


def engaged(team):
    """Active contacts on News, or with a plan over 5."""
    return {"op": "and", "rules": [
        {"field": "status", "operator": "is", "value": "active"},
        {"op": "or", "rules": [{"field": "list", "operator": "in_list", "value": team.news.id},
                               {"field": "custom:plan", "operator": "gt", "value": "5"}]}]}


def page_count(web, segment_id):
    """The count the segment list page shows for a stored segment."""
    return int(soup(web.get(f"/segments/{segment_id}/count", headers={"HX-Request": "true"}))
               .select_one(f"#count-{segment_id}").get_text(strip=True).replace(",", ""))


def test_create_get_list_update_delete(api, acme):
    created = api.post("/api/v1/segments", json={"name": "  Engaged  ", "rules": engaged(acme)})
    assert created.status_code == 201, created.get_data(as_text=True)
    segment = created.get_json()
    assert segment["name"] == "Engaged"
    # Stored cleaned, as the editor stores it: the number as a number.
    assert segment["rules"]["rules"][1]["rules"][1] == {"field": "custom:plan", "operator": "gt", "value": 5}
    assert Segment.get_by_id(segment["id"]).rules == segment["rules"]
    assert segment["description"] == "Status is Active and (List is subscribed to “News” or Plan > 5)"
    assert segment["created_at"].endswith("Z")
    assert api.get(f"/api/v1/segments/{segment['id']}").get_json() == segment

    api.post("/api/v1/segments", json={"name": "all bounced", "rules": {
        "op": "and", "rules": [{"field": "status", "operator": "is", "value": "bounced"}]}})
    assert [item["name"] for item in api.get("/api/v1/segments").get_json()["data"]] == ["all bounced", "Engaged"]

    renamed = api.patch(f"/api/v1/segments/{segment['id']}", json={"name": "Keen"})
    assert renamed.status_code == 200, renamed.get_data(as_text=True)
    assert renamed.get_json()["name"] == "Keen" and renamed.get_json()["rules"] == segment["rules"]
    narrowed = api.patch(f"/api/v1/segments/{segment['id']}", json={"rules": {
        "op": "and", "rules": [{"field": "domain", "operator": "is", "value": "a.example.com"}]}}).get_json()
    assert narrowed["name"] == "Keen" and narrowed["description"] == "Email domain is “a.example.com”"
    assert api.get(f"/api/v1/segments/{segment['id']}/count").get_json() == {"count": 2, "problem": None}

    assert api.delete(f"/api/v1/segments/{segment['id']}").status_code == 204
    assert Segment.get_or_none(Segment.id == segment["id"]) is None
    refused(api.get(f"/api/v1/segments/{segment['id']}"), 404)


def test_counts_equal_the_pages_counts(web, api, acme):
    rules = engaged(acme)
    segment = api.post("/api/v1/segments", json={"name": "Engaged", "rules": rules}).get_json()
    counted = api.get(f"/api/v1/segments/{segment['id']}/count").get_json()
    assert counted == {"count": 2, "problem": None}  # ann (on News) and bob (plan 7); cat bounced, dan neither
    assert counted["count"] == page_count(web, segment["id"])
    preview = api.post("/api/v1/segments/count", json={"rules": rules})
    assert preview.status_code == 200 and preview.get_json()["count"] == 2
    # The editor's live count of unsaved rules, and the API's preview of the same rules.
    live = web.post("/segments/new/count", {
        "name": "x", "rules.op": "and",
        "rules.0.field": "status", "rules.0.was": "status", "rules.0.operator": "is", "rules.0.was_operator": "is",
        "rules.0.value": "active",
        "rules.1.field": "list", "rules.1.was": "list", "rules.1.operator": "in_list",
        "rules.1.was_operator": "in_list", "rules.1.value": str(acme.news.id)}, htmx=True)
    assert "2 contacts match" in " ".join(soup(live).get_text(" ", strip=True).split())  # ann, bob
    on_news = {"op": "and", "rules": [{"field": "status", "operator": "is", "value": "active"},
                                      {"field": "list", "operator": "in_list", "value": acme.news.id}]}
    assert api.post("/api/v1/segments/count", json={"rules": on_news}).get_json()["count"] == 2
    only_active = {"op": "and", "rules": [{"field": "status", "operator": "is", "value": "active"}]}
    assert api.post("/api/v1/segments/count", json={"rules": only_active}).get_json()["count"] == 3
    assert api.post("/api/v1/segments/count", json={"rules": {"op": "and", "rules": []}}).get_json()["count"] == 5
    assert Segment.select().count() == 1  # a preview stores nothing


def test_invalid_rules_are_refused_at_the_path_of_each_rule(api, acme):
    other_list = MailingList.create(team=Team.create(name="Other"), name="Theirs")
    body = refused(api.post("/api/v1/segments", json={"name": "Broken", "rules": {"op": "and", "rules": [
        {"field": "status", "operator": "is", "value": "active"},
        {"field": "shoe_size", "operator": "is", "value": "9"},
        {"op": "or", "rules": [{"field": "custom:plan", "operator": "gt", "value": "lots"},
                               {"field": "list", "operator": "in_list", "value": other_list.id}]}]}}))
    assert set(body["errors"]) == {"rules.rules.1", "rules.rules.2.rules.0", "rules.rules.2.rules.1"}
    assert "not a field a segment can use" in body["errors"]["rules.rules.1"]
    assert "Enter a number" in body["errors"]["rules.rules.2.rules.0"]
    assert "does not exist in this team" in body["errors"]["rules.rules.2.rules.1"]
    assert body["detail"].startswith("Rule 2: ")
    body = refused(api.post("/api/v1/segments", json={"name": "Flat", "rules": {"field": "email"}}))
    assert "must be a group" in body["errors"]["rules"]
    body = refused(api.post("/api/v1/segments/count", json={"rules": {"op": "xor", "rules": []}}))
    assert "“and” or “or”" in body["errors"]["rules"]
    assert Segment.select().count() == 0

    api.post("/api/v1/segments", json={"name": "Engaged", "rules": engaged(acme)})
    body = refused(api.post("/api/v1/segments", json={"name": "engaged", "rules": {"op": "and", "rules": []}}))
    assert body["errors"] == {"name": "There is already a segment called “engaged”."}
    body = refused(api.post("/api/v1/segments", json={"name": "   ", "rules": {"op": "and", "rules": []}}))
    assert body["errors"] == {"name": "Give the segment a name."}
    body = refused(api.post("/api/v1/segments", json={"name": "No rules"}))
    assert set(body["errors"]) == {"rules"}


def test_a_refused_update_changes_nothing(api, acme):
    segment = api.post("/api/v1/segments", json={"name": "Engaged", "rules": engaged(acme)}).get_json()
    body = refused(api.patch(f"/api/v1/segments/{segment['id']}", json={
        "name": "Renamed", "rules": {"op": "and", "rules": [{"field": "status", "operator": "is", "value": "gone"}]}}))
    assert "Choose a status" in body["errors"]["rules.rules.0"]
    stored = Segment.get_by_id(segment["id"])
    assert stored.name == "Engaged" and stored.rules == segment["rules"]


def test_a_segment_a_live_campaign_uses_is_not_deleted(api, acme):
    segment = api.post("/api/v1/segments", json={"name": "VIP", "rules": {"op": "and", "rules": []}}).get_json()
    campaign = Campaign.create(team=acme, name="Spring sale", audience={"lists": [], "segments": [segment["id"]]})
    body = refused(api.delete(f"/api/v1/segments/{segment['id']}"), 409)
    assert "audience of “Spring sale”" in body["detail"]
    document = api.client.get("/api/v1/openapi.json").get_json()
    assert "409" in document["paths"]["/api/v1/segments/{segment_id}"]["delete"]["responses"]
    assert Segment.get_or_none(Segment.id == segment["id"])
    campaign.state = "completed"
    campaign.save()
    assert api.delete(f"/api/v1/segments/{segment['id']}").status_code == 204


def test_a_stored_segment_whose_list_is_gone_counts_as_a_problem(web, api, acme):
    doomed = MailingList.create(team=acme, name="Doomed")
    segment = api.post("/api/v1/segments", json={"name": "On doomed", "rules": {
        "op": "and", "rules": [{"field": "list", "operator": "in_list", "value": doomed.id}]}}).get_json()
    doomed.delete_instance()
    counted = api.get(f"/api/v1/segments/{segment['id']}/count")
    assert counted.status_code == 200
    assert counted.get_json()["count"] is None and "does not exist" in counted.get_json()["problem"]
    assert "Needs fixing" in web.get(f"/segments/{segment['id']}/count").get_data(as_text=True)


def test_another_teams_segment_is_not_found(api, api_key_for, acme):
    outsider = api_key_for("admin", Team.create(name="Other"))
    theirs = outsider.post("/api/v1/segments", json={"name": "Theirs", "rules": {"op": "and", "rules": []}})
    theirs_id = theirs.get_json()["id"]
    for method, path, body in (("GET", f"/api/v1/segments/{theirs_id}", None),
                               ("PATCH", f"/api/v1/segments/{theirs_id}", {"name": "Mine"}),
                               ("DELETE", f"/api/v1/segments/{theirs_id}", None),
                               ("GET", f"/api/v1/segments/{theirs_id}/count", None)):
        refused(api.call(method, path, json=body), 404)
    assert Segment.get_by_id(theirs_id).name == "Theirs"
    assert api.get("/api/v1/segments").get_json()["data"] == []


def test_a_guest_key_reads_and_counts_but_does_not_write(api_key_for, acme):
    api_key_for("admin").post("/api/v1/segments", json={"name": "All", "rules": {"op": "and", "rules": []}})
    guest = api_key_for("guest")
    segment_id = guest.get("/api/v1/segments").get_json()["data"][0]["id"]
    assert guest.get(f"/api/v1/segments/{segment_id}/count").get_json()["count"] == 5
    assert "edit_content" in refused(guest.post("/api/v1/segments/count", json={"rules": {}}), 403)["detail"]
    refused(guest.post("/api/v1/segments", json={"name": "Mine", "rules": {}}), 403)
    refused(guest.delete(f"/api/v1/segments/{segment_id}"), 403)
