"""/api/v1/contacts/{id}/activity: the contact page's timeline as cursor pages, newest first, the same events
in the same words, each with its campaign."""
import datetime

import pytest

from app import events
from app.models import Contact
from app.models import Team
from app.models import utcnow
from tests.conftest import soup
from tests.tracking_support import make_campaign

PROBLEM = "application/problem+json"


@pytest.fixture
def ann(ctx, admin, api):
    """A contact made through the API (its "created" event), sent a campaign she opened, clicked, then
    complained about, each a minute apart."""
    team = Team.get(Team.name == "Acme")
    contact_id = api.post("/api/v1/contacts", json={"email": "ann@example.com", "name": "Ann"}).get_json()["id"]
    contact = Contact.get_by_id(contact_id)
    campaign = make_campaign(team, name="Spring news")
    start = utcnow() + datetime.timedelta(minutes=1)
    for minute, (type, data) in enumerate([("sent", {}), ("opened", {"machine": True}),
                                           ("clicked", {"url": "https://example.com/offer"}),
                                           ("complained", {"source": "generic"})]):
        events.record(team, contact, type, data, campaign_id=campaign.id, at=start + datetime.timedelta(minutes=minute))
    contact.campaign = campaign
    return contact


def test_activity_is_the_timeline_newest_first_with_campaigns(api, ann):
    response = api.get(f"/api/v1/contacts/{ann.id}/activity")
    assert response.status_code == 200, response.get_data(as_text=True)
    page = response.get_json()
    assert [item["type"] for item in page["data"]] == ["complained", "clicked", "opened", "sent", "created"]
    assert page["next_cursor"] is None and page["next"] is None
    complained, clicked, opened, sent, created = page["data"]
    assert complained["label"] == "Marked as spam"
    assert complained["summary"] == "“Spring news” · abuse · via webhook"
    assert clicked["summary"] == "“Spring news” · https://example.com/offer"
    assert opened["summary"] == "“Spring news” · machine open (privacy proxy), not counted"
    assert sent["campaign_id"] == ann.campaign.id and sent["campaign_name"] == "Spring news"
    assert created["label"] == "Added" and created["campaign_id"] is None and created["campaign_name"] is None
    assert complained["at"].endswith("Z") and complained["at"] > clicked["at"]


def test_activity_says_what_the_contact_page_says(web, api, ann):
    shown = [(item.select_one("strong").get_text(strip=True),
              (item.select_one("span.muted") or item.select_one("strong")).get_text(strip=True))
             for item in soup(web.get(f"/contacts/{ann.id}")).select("#timeline li.event")]
    answered = [(item["label"], item["summary"] or item["label"])
                for item in api.get(f"/api/v1/contacts/{ann.id}/activity").get_json()["data"]]
    assert answered == shown and len(shown) == 5


def test_cursor_pages_walk_every_event_once(api, ann):
    seen, url = [], f"/api/v1/contacts/{ann.id}/activity?limit=2"
    while url:
        page = api.get(url).get_json()
        assert len(page["data"]) <= 2
        seen += [item["id"] for item in page["data"]]
        url = page["next"]
        assert (page["next_cursor"] is None) == (url is None)
    everything = [item["id"] for item in api.get(f"/api/v1/contacts/{ann.id}/activity?limit=500").get_json()["data"]]
    assert seen == everything and len(seen) == 5


def test_refusals(api, api_key_for, ann):
    outsider = api_key_for("admin", Team.create(name="Other"))
    response = outsider.get(f"/api/v1/contacts/{ann.id}/activity")
    assert response.status_code == 404 and response.mimetype == PROBLEM
    response = api.get(f"/api/v1/contacts/{ann.id}/activity?cursor=not-a-cursor")
    assert response.status_code == 400 and "cursor" in response.get_json()["errors"]
    response = api.get(f"/api/v1/contacts/{ann.id}/activity?limit=0&colour=red")
    assert response.status_code == 422 and set(response.get_json()["errors"]) == {"limit", "colour"}
    guest = api_key_for("guest")
    assert guest.get(f"/api/v1/contacts/{ann.id}/activity").status_code == 200


def test_another_teams_campaign_is_not_named(api, ann):
    theirs = make_campaign(Team.create(name="Other"), name="Their secret launch")
    events.record(ann.team_id, ann, "sent", campaign_id=theirs.id, at=utcnow() + datetime.timedelta(hours=1))
    newest = api.get(f"/api/v1/contacts/{ann.id}/activity?limit=1").get_json()["data"][0]
    assert newest["campaign_id"] == theirs.id and newest["campaign_name"] is None
    assert newest["summary"] == f"Campaign #{theirs.id}"
