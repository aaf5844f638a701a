"""Deleting an automation (app/automations/deletion.py, views.confirm_delete / delete): paused first, a confirmation
that counts the runs still waiting, everything of the automation gone, its queued emails never sent by the real
engine, what was already sent kept in the contact's Activity, the hidden campaigns still hidden; roles, another
team's id, CSRF."""
import pytest

from app.automations import flow
from app.automations import mail
from app.automations import runs
from app.campaigns import listing
from app.models import Automation
from app.models import AutomationRun
from app.models import AutomationStep
from app.models import AutomationVisit
from app.models import Campaign
from app.models import CaughtMessage
from app.models import Contact
from app.models import Event
from app.models import Membership
from app.models import Send
from app.models import Team
from app.models import utcnow
from tasks import sending as sending_tasks
from tests.accounts_support import make_member
from tests.conftest import soup


@pytest.fixture
def series(app, admin):
    team = Team.get(Team.name == "Acme")
    with app.app_context():
        return flow.create_automation(team, admin, "", starter="welcome")


def _reader(team, number):
    return Contact.get((Contact.team == team) & (Contact.email == f"reader{number}@example.com"))


def test_a_live_automation_is_paused_first_and_the_button_says_so(web, series):
    Automation.update(state="live").where(Automation.id == series.id).execute()
    builder = soup(web.get(f"/automations/{series.id}"))
    button = builder.select_one("#delete-button")
    assert button["aria-describedby"] == "delete-help"
    assert "pause it first" in builder.select_one("#delete-help").text
    confirm = web.get(f"/automations/{series.id}/delete", headers={"HX-Request": "true"})
    box = soup(confirm)
    assert "Pause this automation before deleting it" in box.select_one("#d-delete").text
    assert box.select_one("input[name=action]")["value"] == "pause"  # the way forward, not a dead end
    assert not box.find("button", string="Delete automation")
    refused = web.post(f"/automations/{series.id}/delete")
    assert refused.status_code == 409
    assert "Pause this automation before deleting it" in soup(refused).select_one("[role=alert]").text
    assert Automation.get_by_id(series.id).state == "live"
    assert AutomationStep.select().where(AutomationStep.automation == series.id).count() == 3


def test_delete_stops_the_waiting_runs_keeps_what_was_sent_and_hides_the_campaign(ctx, web, ready_team):
    team, _news = ready_team
    automation = flow.create_automation(team, None, "Onboarding", starter="welcome")
    Automation.update(from_email="hello@acme.example", state="live").where(Automation.id == automation.id).execute()
    automation = Automation.get_by_id(automation.id)
    first = flow.ordered_steps(automation)[0]
    now = utcnow()
    sent_to, waiting = _reader(team, 0), _reader(team, 1)
    run0 = runs.enter(automation, sent_to, now=now)
    assert mail.queue_email(run0, first, sent_to, now) == "queued"
    campaign_id = AutomationStep.get_by_id(first.id).campaign_id
    assert sending_tasks.run_campaign(campaign_id).outcome == "idle"  # the real engine: reader0's email went
    assert CaughtMessage.select().count() == 1
    run1 = runs.enter(automation, waiting, now=now)
    assert mail.queue_email(run1, AutomationStep.get_by_id(first.id), waiting, now) == "queued"  # not sent yet
    AutomationVisit.update(outcome="queued", done_at=now).where(AutomationVisit.run == run1.id).execute()
    runs.enter(automation, _reader(team, 2), now=now)
    events_before = Event.select().where(Event.campaign_id == campaign_id).count()
    assert mail.due_campaign_ids() == [campaign_id]

    web.post(f"/automations/{automation.id}/state", {"action": "pause"})
    page = soup(web.get(f"/automations/{automation.id}/delete"))  # no JavaScript: a page of its own
    assert page.select_one("h1").text.strip() == "Delete “Onboarding”?"
    assert "3 contacts are still going through it" in page.select_one("#d-delete").text
    fragment = web.get(f"/automations/{automation.id}/delete", headers={"HX-Request": "true"})
    assert soup(fragment).select_one("#delete-automation form")["action"] == f"/automations/{automation.id}/delete"
    assert not soup(fragment).select_one("h1")  # the fragment, not the page

    done = web.post(f"/automations/{automation.id}/delete")
    assert done.status_code == 302 and done.headers["Location"].endswith("/automations/")
    assert "3 contacts stopped" in soup(web.get("/automations/")).select_one(".flash-success").text
    assert Automation.get_or_none(Automation.id == automation.id) is None
    assert AutomationStep.select().where(AutomationStep.automation == automation.id).count() == 0
    assert AutomationRun.select().where(AutomationRun.automation == automation.id).count() == 0
    assert AutomationVisit.select().count() == 0

    # The queued email is never sent: the campaign is cancelled, and the engine asked to send it stops.
    campaign = Campaign.get_by_id(campaign_id)
    assert campaign.state == "cancelled" and "Onboarding" in campaign.state_reason
    assert sending_tasks.run_campaign(campaign_id).outcome == "stopped"
    assert mail.due_campaign_ids() == []  # the automations tick no longer asks the engine about it
    assert CaughtMessage.select().count() == 1
    assert Send.get((Send.campaign == campaign_id) & (Send.contact == waiting.id)).status == "queued"
    # What was sent stays: the Send, the events, the contact's Activity.
    assert Send.get((Send.campaign == campaign_id) & (Send.contact == sent_to.id)).status == "sent"
    assert Event.select().where(Event.campaign_id == campaign_id).count() == events_before
    activity = soup(web.get(f"/contacts/{sent_to.id}")).select_one("#timeline").text
    assert "Onboarding · step" in activity
    # Still not one of the team's campaigns.
    page = listing.campaign_page(team, listing.CampaignFilter())
    assert campaign_id not in [row["campaign"].id for row in page.rows] and page.any_campaign is False


@pytest.mark.parametrize("role", ["manager", "author", "guest"])
def test_role_matrix(app, series, role):
    Automation.update(state="paused").where(Automation.id == series.id).execute()
    _, member = make_member(app, series.team, role)
    allowed = role == "manager"  # "send", as the other state changes
    assert (member.get(f"/automations/{series.id}/delete").status_code == 403) != allowed
    response = member.post(f"/automations/{series.id}/delete")
    assert response.status_code == (302 if allowed else 403)
    assert Automation.select().where(Automation.id == series.id).exists() != allowed


def test_another_teams_automation_is_not_found_and_not_deleted(app, series):
    Automation.update(state="paused").where(Automation.id == series.id).execute()
    other = Team.create(name="Globex")
    user, stranger = make_member(app, other, "admin", "boss@globex.example")
    Membership.delete().where((Membership.user == user) & (Membership.team != other)).execute()
    assert stranger.get(f"/automations/{series.id}/delete").status_code == 404
    assert stranger.post(f"/automations/{series.id}/delete").status_code == 404
    assert Automation.get_by_id(series.id).state == "paused"
    assert AutomationStep.select().where(AutomationStep.automation == series.id).count() == 3


def test_delete_without_the_csrf_token_is_refused(client, web, series):
    Automation.update(state="paused").where(Automation.id == series.id).execute()
    assert client.post(f"/automations/{series.id}/delete").status_code in (400, 403)
    assert Automation.select().where(Automation.id == series.id).exists()
