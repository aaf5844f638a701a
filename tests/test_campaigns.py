"""Campaigns end to end: builder, live count, publish checks, send into a real SMTP server,
schedule in the team's time zone, pause/resume/cancel, the state machine, A/B tests, resend."""
import datetime
import email
import email.policy

import pytest

from app.campaigns import ab_testing
from app.campaigns import publishing
from app.campaigns import states
from app.models import CaughtMessage
from app.models import Campaign
from app.models import Contact
from app.models import Event
from app.models import MailingList
from app.models import Membership
from app.models import Send
from app.models import Subscription
from app.models import Team
from app.models import UsageCount
from app.models import Variant
from app.models import utcnow
from tests.accounts_support import make_member
from tests.campaigns_support import create_draft
from tests.campaigns_support import draft_form
from tests.conftest import soup


def test_empty_state_and_create(web, admin):
    page = soup(web.get("/campaigns/"))
    assert "No campaigns yet" in page.select_one(".empty").text
    response = web.post("/campaigns/new", {"name": "  "})
    assert response.status_code == 422  # the form again, with the message next to the name
    assert "Give the campaign a name" in soup(response).select_one("#e-name").text
    assert Campaign.select().count() == 0


def test_live_count_leaves_out_unsubscribed(web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news)
    fragment = web.post(f"/campaigns/{campaign.id}/count", {"lists": [str(news.id)]}, htmx=True)
    assert soup(fragment).select_one("#recipient-count strong").text == "4"
    nothing = web.post(f"/campaigns/{campaign.id}/count", {}, htmx=True)
    assert soup(nothing).select_one("#recipient-count strong").text == "0"


def test_publish_is_refused_with_reasons(web, admin):
    team = Team.get(Team.name == "Acme")
    news = MailingList.create(team=team, name="Empty")
    campaign = create_draft(web, news, subject="", from_email="news@unverified.example")
    page = soup(web.get(f"/campaigns/{campaign.id}"))
    problems = [li.text for li in page.select("ul.problems li")]
    assert any("subject" in p for p in problems)
    assert any("unverified.example is not verified" in p for p in problems)
    assert any("postal address" in p for p in problems)
    assert any("SMTP account" in p for p in problems)
    response = web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"}, follow_redirects=True)
    assert "Not published" in soup(response).select_one(".flash-error").text
    assert Campaign.get_by_id(campaign.id).state == "draft"


def test_a_broken_template_is_refused_at_publish(app, web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news, body="<p>{{ 'x' * 10**9 }}</p>")
    with app.app_context():
        problems = publishing.publish_problems(Campaign.get_by_id(campaign.id))
    assert any(p.startswith("Content:") for p in problems), problems


def test_an_ab_campaign_whose_own_content_breaks_is_refused_at_publish(app, web, ready_team):
    """The engine renders the campaign's own content as well as each variant's, so a body changed behind the
    form's back (both variants fine) must stop publishing instead of failing inside the worker."""
    team, news = ready_team
    campaign = create_draft(web, news, ab_enabled="1", ab_sample_percent="50", ab_wait_minutes="60",
                            ab_metric="clicks", b_subject="A different subject")
    with app.app_context():
        assert publishing.publish_problems(Campaign.get_by_id(campaign.id)) == []
        Campaign.update(body="<p>{{ 'x' * 10**9 }}</p>").where(Campaign.id == campaign.id).execute()
        for variant in Variant.select().where(Variant.campaign == campaign.id):
            if not variant.body:
                variant.body = "<p>Fine</p>"
                variant.save()
        problems = publishing.publish_problems(Campaign.get_by_id(campaign.id))
    assert any(p.startswith("Content:") for p in problems), problems


def test_send_now_delivers_with_the_right_headers(app, web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news)
    response = web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"})
    assert response.status_code == 302
    campaign = Campaign.get_by_id(campaign.id)
    assert campaign.state == "completed", campaign.state_reason
    assert campaign.total == 4
    messages = list(CaughtMessage.select())
    assert sorted(m.recipients[0] for m in messages) == [f"reader{i}@example.com" for i in range(4)]
    parsed = email.message_from_bytes(bytes(messages[0].raw), policy=email.policy.default)
    assert parsed["Subject"].startswith("Hello Reader")
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "https://" in parsed["List-Unsubscribe"] or "http://" in parsed["List-Unsubscribe"]
    assert "mailto:" in parsed["List-Unsubscribe"]
    assert parsed["Feedback-ID"] and parsed["X-Loft-Token"]
    assert parsed["Message-ID"].endswith("@acme.example>")
    html = parsed.get_body(("html",)).get_content()
    assert "1 Main Street, Springfield" in html
    assert "/c/" in html and "/o/" in html
    assert parsed.get_body(("plain",)) is not None
    sends = list(Send.select().where(Send.campaign == campaign))
    assert {s.status for s in sends} == {"sent"} and len(sends) == 4
    assert len({s.message_id for s in sends}) == 4
    month = utcnow().strftime("%Y-%m")
    assert UsageCount.get(UsageCount.team == team, UsageCount.month == month).messages == 4
    progress = soup(web.get(f"/campaigns/{campaign.id}/progress"))
    assert progress.select_one("#progress .badge").text == "Completed"
    assert "hx-trigger" not in str(progress.select_one("#progress"))  # polling stops when done


def test_progress_fragment_polls_while_sending(web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news)
    Campaign.update(state="sending", total=4, frozen_at=utcnow()).where(Campaign.id == campaign.id).execute()
    fragment = web.get(f"/campaigns/{campaign.id}/progress", headers={"HX-Request": "true"})
    widget = soup(fragment).select_one("#progress")
    assert widget["hx-trigger"] == "every 1s"
    assert soup(fragment).select_one("body") is None


def test_schedule_in_the_team_time_zone(app, web, ready_team):
    team, news = ready_team
    team.time_zone = "America/New_York"
    team.save()
    campaign = create_draft(web, news)
    local = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)).astimezone(
        __import__("zoneinfo").ZoneInfo("America/New_York")).replace(second=0, microsecond=0, tzinfo=None)
    response = web.post(f"/campaigns/{campaign.id}/publish", {"when": "later", "scheduled_at": local.isoformat()})
    assert response.status_code == 302
    campaign = Campaign.get_by_id(campaign.id)
    assert campaign.state == "scheduled"
    expected = local.replace(tzinfo=__import__("zoneinfo").ZoneInfo("America/New_York")).astimezone(
        datetime.timezone.utc).replace(tzinfo=None)
    assert campaign.scheduled_at == expected
    assert CaughtMessage.select().count() == 0
    # A time in the past is refused with a clear reason.
    other = create_draft(web, news)
    past = web.post(f"/campaigns/{other.id}/publish", {"when": "later", "scheduled_at": "2001-01-01T09:00"},
                    follow_redirects=True)
    assert "has passed" in soup(past).select_one(".flash-error").text
    # When the time comes, the periodic task starts it.
    Campaign.update(scheduled_at=utcnow() - datetime.timedelta(minutes=1)).where(Campaign.id == campaign.id).execute()
    from tasks.sending import tick
    with app.app_context():  # as the consumer's worker threads run it
        tick.call_local()
    assert Campaign.get_by_id(campaign.id).state == "completed"
    assert CaughtMessage.select().count() == 4


def test_unschedule_goes_back_to_draft(web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news)
    web.post(f"/campaigns/{campaign.id}/publish", {"when": "later", "scheduled_at": "2999-01-01T09:00"})
    web.post(f"/campaigns/{campaign.id}/unschedule")
    assert Campaign.get_by_id(campaign.id).state == "draft"


def test_pause_resume_and_cancel(web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news)
    Campaign.update(state="sending", started_at=utcnow()).where(Campaign.id == campaign.id).execute()
    web.post(f"/campaigns/{campaign.id}/pause")
    campaign = Campaign.get_by_id(campaign.id)
    assert campaign.state == "paused" and "Paused by" in campaign.state_reason
    illegal = web.post(f"/campaigns/{campaign.id}/unschedule", follow_redirects=True)
    assert "cannot unschedule" in soup(illegal).select_one(".flash-error").text
    web.post(f"/campaigns/{campaign.id}/cancel")
    assert Campaign.get_by_id(campaign.id).state == "cancelled"
    again = web.post(f"/campaigns/{campaign.id}/resume", follow_redirects=True)
    assert soup(again).select_one(".flash-error") is not None
    assert Campaign.get_by_id(campaign.id).state == "cancelled"


def test_a_sent_campaign_is_neither_deleted_nor_published_again(web, ready_team):
    """Completed may go back to sending only to resend failed messages: publishing it again is refused
    before its audience is frozen again, and its report is kept."""
    team, news = ready_team
    campaign = create_draft(web, news)
    web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"})
    assert Campaign.get_by_id(campaign.id).state == "completed" and CaughtMessage.select().count() == 4
    deleted = web.post(f"/campaigns/{campaign.id}/delete", follow_redirects=True)
    assert "this one is completed" in soup(deleted).select_one(".flash-error").text
    again = web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"}, follow_redirects=True)
    assert "A completed campaign cannot send now" in soup(again).select_one(".flash-error").text
    stored = Campaign.get_by_id(campaign.id)
    assert stored.state == "completed" and CaughtMessage.select().count() == 4
    assert Send.select().where(Send.campaign == campaign.id).count() == 4


@pytest.mark.parametrize("current,target,ok", [
    ("draft", "scheduled", True), ("draft", "paused", False), ("scheduled", "sending", True),
    ("sending", "paused", True), ("paused", "sending", True), ("sending", "completed", True),
    ("completed", "paused", False), ("cancelled", "sending", False), ("paused", "scheduled", False),
])
def test_state_machine(app, admin, current, target, ok):
    team = Team.get(Team.name == "Acme")
    campaign = Campaign.create(team=team, name="x", state=current)
    if ok:
        assert states.transition(campaign, target).state == target
    else:
        with pytest.raises(states.TransitionError):
            states.transition(campaign, target)
        assert Campaign.get_by_id(campaign.id).state == current


def test_a_stale_transition_loses_the_race(app, admin):
    team = Team.get(Team.name == "Acme")
    campaign = Campaign.create(team=team, name="x", state="sending")
    stale = Campaign.get_by_id(campaign.id)
    states.transition(campaign, "paused")
    with pytest.raises(states.TransitionError, match="changed meanwhile"):
        states.transition(stale, "completed")


def test_roles_on_campaigns(app, web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news)
    _, author = make_member(app, team, "author")
    _, guest = make_member(app, team, "guest")
    assert author.post(f"/campaigns/{campaign.id}", draft_form(news, subject="By the author")).status_code == 302
    assert author.post(f"/campaigns/{campaign.id}/publish", {"when": "now"}).status_code == 403
    assert guest.post(f"/campaigns/{campaign.id}", draft_form(news)).status_code == 403
    assert guest.get(f"/campaigns/{campaign.id}").status_code == 200
    assert Campaign.get_by_id(campaign.id).state == "draft"


def test_another_teams_campaign_is_not_found(app, web, ready_team):
    other = Team.create(name="Other")
    foreign = Campaign.create(team=other, name="Theirs")
    for path in (f"/campaigns/{foreign.id}", f"/campaigns/{foreign.id}/progress", f"/campaigns/{foreign.id}/failed"):
        assert web.get(path).status_code == 404
    for path in ("publish", "pause", "cancel", "count", "resend", "delete", "failed/requeue"):
        assert web.post(f"/campaigns/{foreign.id}/{path}").status_code == 404
    assert Campaign.get_by_id(foreign.id).state == "draft"


def test_ab_test_sends_a_sample_then_the_winner(app, web, ready_team):
    team, news = ready_team
    for i in range(5, 25):
        contact = Contact.create(team=team, email=f"more{i}@example.com", domain="example.com", name=f"More {i}")
        Subscription.create(contact=contact, list=news, status="subscribed")
    campaign = create_draft(web, news, ab_enabled="1", ab_sample_percent="50", ab_wait_minutes="60",
                            ab_metric="clicks", b_subject="A different subject")
    assert [v.label for v in campaign.variants.order_by(Variant.label)] == ["A", "B"]
    web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"})
    campaign = Campaign.get_by_id(campaign.id)
    sample = CaughtMessage.select().count()
    assert campaign.total == 24 and sample == 12
    assert Send.select().where((Send.campaign == campaign) & (Send.status == "held")).count() == 12
    subjects = {email.message_from_bytes(bytes(m.raw), policy=email.policy.default)["Subject"]
                for m in CaughtMessage.select()}
    assert "A different subject" in subjects and any(s.startswith("Hello") for s in subjects)
    # Variant B gets the clicks.
    b = Variant.get(Variant.campaign == campaign, Variant.label == "B")
    for send in Send.select().where(Send.variant == b).limit(3):
        Event.create(team=team, contact=send.contact, campaign_id=campaign.id, type="clicked", data={})
    assert not ab_testing.ab_decision_due(campaign)
    Campaign.update(started_at=utcnow() - datetime.timedelta(minutes=61)).where(Campaign.id == campaign.id).execute()
    from tasks.sending import tick
    with app.app_context():  # as the consumer's worker threads run it
        tick.call_local()
    assert Variant.get_by_id(b.id).is_winner
    campaign = Campaign.get_by_id(campaign.id)
    assert campaign.state == "completed"
    assert CaughtMessage.select().count() == 24
    later = [email.message_from_bytes(bytes(m.raw), policy=email.policy.default)["Subject"]
             for m in CaughtMessage.select().order_by(CaughtMessage.id.desc()).limit(12)]
    assert set(later) == {"A different subject"}
    page = soup(web.get(f"/campaigns/{campaign.id}/progress"))
    assert "winner" in page.select_one("#progress table").text


def test_resend_to_non_openers(app, web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news)
    web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"})
    opener = Contact.get(Contact.email == "reader0@example.com")
    Event.create(team=team, contact=opener, campaign_id=campaign.id, type="opened", data={})
    response = web.post(f"/campaigns/{campaign.id}/resend", {"who": "non_openers"})
    copy = Campaign.get(Campaign.parent == campaign)
    assert response.headers["Location"].endswith(f"/campaigns/{copy.id}")
    web.post(f"/campaigns/{copy.id}/publish", {"when": "now"})
    copy = Campaign.get_by_id(copy.id)
    assert copy.total == 3
    recipients = {s.email for s in Send.select().where(Send.campaign == copy)}
    assert "reader0@example.com" not in recipients


def test_ab_sample_is_split_evenly_between_variants(app, web, ready_team):
    team, news = ready_team
    for i in range(5, 41):
        contact = Contact.create(team=team, email=f"split{i}@example.com", domain="example.com", name=f"S {i}")
        Subscription.create(contact=contact, list=news, status="subscribed")
    campaign = create_draft(web, news, ab_enabled="1", ab_sample_percent="50", ab_wait_minutes="60",
                            b_subject="Other subject")
    with app.app_context():
        publishing.start(Campaign.get_by_id(campaign.id))
    counts = {v.label: Send.select().where(Send.variant == v).count() for v in Variant.select()}
    assert counts["A"] == counts["B"] == 10  # 40 recipients, a 50% sample of 20, half each


def test_requeued_failures_get_their_retries_back(app, web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news)
    Campaign.update(state="completed", total=1, failed=1, frozen_at=utcnow()).where(Campaign.id == campaign.id).execute()
    contact = Contact.get(Contact.email == "reader0@example.com")
    Send.create(campaign=campaign, contact=contact, email=contact.email, status="failed", attempts=5, error="451")
    with app.app_context():
        count, fresh = publishing.requeue_failed(Campaign.get_by_id(campaign.id))
    assert count == 1 and fresh.state == "sending" and fresh.failed == 0
    assert Send.get(Send.campaign == campaign).attempts == 0


def test_preview_as_a_contact_and_test_send(app, web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news)
    pane = soup(web.get(f"/campaigns/{campaign.id}/preview?contact=reader1@example.com", headers={"HX-Request": "true"}))
    assert pane.select_one("#preview-subject").text == "Hello Reader 1"
    frame = pane.select_one("iframe.message-frame")
    assert frame.has_attr("sandbox") and not frame["sandbox"]
    html = web.get(frame["src"])
    assert "Hi Reader 1" in html.get_data(as_text=True)
    assert "sandbox" in html.headers["Content-Security-Policy"]
    bad = web.post(f"/campaigns/{campaign.id}/test", {"addresses": "not-an-address"}, htmx=True)
    assert bad.status_code == 422
    sent = web.post(f"/campaigns/{campaign.id}/test", {"addresses": "me@example.com"}, htmx=True)
    assert soup(sent).select_one(".test-results li .badge").text == "Sent"
    message = CaughtMessage.get()
    parsed = email.message_from_bytes(bytes(message.raw), policy=email.policy.default)
    assert parsed["Subject"].startswith("[Test]")
    assert Campaign.get_by_id(campaign.id).state == "draft"
    assert Send.select().count() == 0  # a test is not a send


def test_authors_cannot_send_tests(app, web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news)
    _, author = make_member(app, team, "author")
    assert author.post(f"/campaigns/{campaign.id}/test", {"addresses": "me@example.com"}).status_code == 403
    assert author.get(f"/campaigns/{campaign.id}/preview").status_code == 200


def test_a_team_template_wraps_the_campaign_body(app, web, ready_team):
    from app.models import Template
    team, news = ready_team
    layout = Template.create(team=team, name="Brand", kind="html",
                             body='<div class="brand"><p>BRAND HEADER</p>{{ content }}</div>')
    other = Template.create(team=Team.create(name="Other"), name="Theirs", kind="html", body="{{ content }}")
    campaign = create_draft(web, news, template=str(layout.id))
    assert Campaign.get_by_id(campaign.id).template_id == layout.id
    html = web.get(f"/campaigns/{campaign.id}/preview.html").get_data(as_text=True)
    assert "BRAND HEADER" in html and "<h1>News</h1>" in html
    create_draft(web, news, template=str(other.id))  # another team's template is ignored
    assert Campaign.select().order_by(Campaign.id.desc()).first().template_id is None
