"""Counts with the right noun: "to 1 person", "Delete 1 contact?" (issue 9, point 19: "to 1 people")."""
from app.models import Contact
from app.models import Team
from app.wording import plural
from tests.campaigns_support import create_draft
from tests.conftest import soup


def test_plural():
    assert [plural(n, "person") for n in (0, 1, 2, 12000)] == ["0 people", "1 person", "2 people", "12,000 people"]
    assert plural(1, "delivery", "deliveries") == "1 delivery" and plural(3, "delivery", "deliveries") == "3 deliveries"
    assert plural(None, "message") == "0 messages"


def test_publish_asks_about_one_person(web, ready_team):  # noqa: F811
    team, news = ready_team
    Contact.update(status="unsubscribed").where(Contact.email != "reader0@example.com").execute()
    campaign = create_draft(web, news)
    button = soup(web.get(f"/campaigns/{campaign.id}")).select_one("#publish button.primary")
    assert button["data-confirm"].endswith("to 1 person?")
    assert soup(web.get(f"/campaigns/{campaign.id}")).select_one("#recipient-count strong").text == "1"


def test_bulk_confirmation_for_one_contact(web, admin):
    team = Team.get(Team.name == "Acme")
    Contact.create(team=team, email="only@old.example", domain="old.example")
    page = soup(web.post("/contacts/bulk", {"action": "change_status", "new_status": "unsubscribed",
                                            "scope": "filter", "q": "@old.example"}))
    assert page.select_one("h1").text.strip() == "Change the status of 1 contact to Unsubscribed?"
