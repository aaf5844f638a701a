"""Auto-pause: real campaigns sent by the engine to a real SMTP server on loopback (aiosmtpd) that
refuses some recipients with 550 5.1.1; complaints through outcomes.apply with feedback reports."""
import email
import email.policy

import pytest

from app.notices import alerts
from app.bounces import autopause
from app.bounces import outcomes
from app.bounces.parse import report_for
from app.models import Campaign
from app.models import CaughtMessage
from app.models import Contact
from app.models import Notice
from app.models import Send
from app.models import Team
from app.models import utcnow
from app.sending import ledger
from tasks import sending as sending_tasks
from tests.conftest import soup
from tests.sending_support import make_account
from tests.sending_support import make_campaign
from tests.sending_support import make_contacts
from tests.sending_support import run_until_settled
from tests.sending_support import statuses


@pytest.fixture
def ctx(ctx):
    """conftest's ctx with fast sending timings."""
    ctx.config.update(SEND_RETRY_DELAYS=(0.05, 0.1), SEND_RECONNECT_DELAY=0.01, SEND_FLUSH_INTERVAL=0.05,
                      SEND_STATE_INTERVAL=0.1, SEND_MAX_IN_RUN_WAIT=5.0, SEND_BATCH_SIZE=50,
                      AUTOPAUSE_CHECK_SECONDS=0, AUTOPAUSE_MIN_SENT=100, AUTOPAUSE_BOUNCE_RATE=0.05,
                      AUTOPAUSE_COMPLAINT_RATE=0.003)
    autopause._last_check.clear()
    return ctx


def team_with_admin():
    """The team from the `admin` fixture (Acme, whose Administrator is admin@example.com)."""
    team = Team.get(Team.name == "Acme")
    team.default_from_email, team.postal_address = "news@acme.test", "1 Main Street"
    team.save()
    return team


def launch(team, port, good, bad, connections=1):
    """A frozen sending campaign to `good` deliverable and `bad` refused ("gone...") addresses,
    spread evenly in id order (the order the engine sends in)."""
    from app.models import MailingList
    mailing_list = MailingList.create(team=team, name="Newsletter")
    every = (good + bad) // bad
    contacts = []
    for i in range(good + bad):
        contacts += make_contacts(team, 1, mailing_list, prefix="gone" if i % every == 0 else "reader", start=i)
    make_account(team, port, max_connections=connections)
    campaign = make_campaign(team, [mailing_list])
    ledger.freeze_audience(campaign)
    return Campaign.get_by_id(campaign.id), contacts


def test_many_hard_bounces_pause_the_campaign_once_with_the_reason_and_alert(ctx, admin, smtp, catcher):
    server = smtp(reject=("gone",), delay=0.01)
    team = team_with_admin()
    campaign, contacts = launch(team, server.port, good=240, bad=60)  # 20% bounce
    assert sum(c.email.startswith("gone") for c in contacts) == 60

    result = sending_tasks.run_campaign(campaign.id)

    campaign = Campaign.get_by_id(campaign.id)
    assert campaign.state == "paused", (result, campaign.state_reason)
    assert result.outcome == "stopped"
    assert campaign.state_reason.startswith("Paused by Loft:") and "bounced" in campaign.state_reason
    assert "limit is 5.0%" in campaign.state_reason
    # It stopped while sending: part of the audience is still waiting.
    counts = statuses(campaign)
    assert counts.get("queued", 0) > 0, counts
    assert campaign.sent + campaign.failed >= 100
    [notice] = Notice.select().where(Notice.campaign_id == campaign.id)
    assert notice.kind == "autopause" and notice.team_id == team.id
    assert notice.subject == "Campaign “Spring news” paused: too many bounces"
    assert notice.text == campaign.state_reason

    # Checking again changes nothing: the campaign is paused, one notice.
    assert autopause.check_campaign(campaign) is None
    assert Notice.select().count() == 1

    # The Administrator gets one email through Loft's own mail pipeline.
    assert alerts.email_pending() == 1
    assert alerts.email_pending() == 0
    [caught] = CaughtMessage.select()
    message = email.message_from_bytes(caught.raw, policy=email.policy.default)
    assert message["To"] == "admin@example.com"
    assert message["Subject"] == "[Loft] Campaign “Spring news” paused: too many bounces"
    text = message.get_body(("plain",)).get_content()
    assert campaign.state_reason in text and f"http://loft.test/campaigns/{campaign.id}" in text


def test_the_campaign_page_and_the_notices_show_the_reason(app, admin, web):
    """Bounces from the mailbox (outcomes.apply) pause a sending campaign; the page and the bell say so."""
    with app.app_context():
        app.config.update(AUTOPAUSE_CHECK_SECONDS=0)
        team = team_with_admin()
        campaign = make_campaign(team, state="sending")
        Campaign.update(sent=150).where(Campaign.id == campaign.id).execute()
        contacts = _sent_sends(campaign, 150)
        for contact in contacts[:10]:
            outcomes.apply(team.id, report_for(contact.email, status="5.1.1",
                                               diagnostic="550 5.1.1 user unknown"), "imap")
        campaign = Campaign.get_by_id(campaign.id)
    assert campaign.state == "paused" and "8 of 150 messages bounced (5.3%" in campaign.state_reason  # the 8th crossed 5%
    page = soup(web.get(f"/campaigns/{campaign.id}", follow_redirects=True))
    assert campaign.state_reason in page.get_text()
    assert page.select_one(".notices-bell .badge").get_text() == "1"
    assert page.select_one(".notices-bell")["aria-label"] == "Notices: 1 unread"
    notices = soup(web.get("/notices/"))
    assert notices.select_one(".notice h2").get_text(" ", strip=True) == \
        "New Campaign “Spring news” paused: too many bounces"
    assert soup(web.get("/notices/")).select_one(".notices-bell .badge") is None  # read now


def _sent_sends(campaign, count, prefix="reader"):
    contacts = make_contacts(campaign.team, count, prefix=prefix)
    now = utcnow()
    Send.insert_many([{"campaign": campaign.id, "contact": c.id, "email": c.email, "status": "sent",
                       "sent_at": now, "attempts": 1, "message_id": f"<m{c.id}@acme.test>"}
                      for c in contacts]).execute()
    return contacts


def test_below_the_threshold_the_campaign_completes(ctx, admin, smtp):
    server = smtp(reject=("gone",))
    team = team_with_admin()
    campaign, contacts = launch(team, server.port, good=196, bad=4, connections=4)  # 2%

    result = run_until_settled(campaign.id)

    campaign = Campaign.get_by_id(campaign.id)
    assert result.outcome == "completed" and campaign.state == "completed"
    assert campaign.state_reason == ""
    assert statuses(campaign) == {"sent": 196, "bounced": 4}
    # No warning: the one notice says it finished (app/campaigns/finished.py).
    assert [n.kind for n in Notice.select()] == ["campaign_finished"]


def test_a_small_sample_never_pauses(ctx, admin, smtp):
    server = smtp(reject=("gone",))
    team = team_with_admin()
    campaign, _ = launch(team, server.port, good=40, bad=40, connections=4)  # 50%, but only 80 attempted

    assert run_until_settled(campaign.id).outcome == "completed"
    assert Campaign.get_by_id(campaign.id).state == "completed"
    assert [n.kind for n in Notice.select()] == ["campaign_finished"]  # no warning, only that it finished


def test_complaints_through_outcomes_pause_the_campaign(ctx, admin):
    team = team_with_admin()
    campaign = make_campaign(team, state="sending")
    contacts = _sent_sends(campaign, 1000)
    Campaign.update(sent=1000).where(Campaign.id == campaign.id).execute()

    def complain(contact):
        return outcomes.apply(team.id, report_for(contact.email, feedback_type="abuse"), "imap")

    assert complain(contacts[0])[0]["kind"] == "complaint"
    complain(contacts[1])
    complain(contacts[1])  # the same complaint twice counts once
    assert Campaign.get_by_id(campaign.id).state == "sending"  # 2 in 1000 = 0.2%, under 0.3%
    complain(contacts[2])  # 0.3%

    campaign = Campaign.get_by_id(campaign.id)
    assert campaign.state == "paused"
    assert "3 of 1000 recipients marked this campaign as spam" in campaign.state_reason
    [notice] = Notice.select()
    assert notice.subject.endswith("paused: too many complaints") and notice.campaign_id == campaign.id
    complain(contacts[3])
    assert Notice.select().count() == 1  # paused already: no second alert
    assert Contact.get_by_id(contacts[2].id).status == "complained"


def test_after_a_resume_only_what_follows_counts(ctx, admin):
    from app.campaigns import states
    team = team_with_admin()
    campaign = make_campaign(team, state="sending")
    contacts = _sent_sends(campaign, 400)
    Campaign.update(sent=200).where(Campaign.id == campaign.id).execute()
    for contact in contacts[:20]:  # 10% of the first 200
        outcomes.apply(team.id, report_for(contact.email, status="5.1.1", diagnostic="550 5.1.1 no such user"),
                       "imap")
    campaign = Campaign.get_by_id(campaign.id)
    assert campaign.state == "paused"
    states.transition(campaign, "sending")  # someone looked and resumed it
    # The old bounces (also the 10 that arrived while it was paused) do not pause it again.
    assert autopause.check_campaign(campaign) is None
    Campaign.update(sent=300).where(Campaign.id == campaign.id).execute()
    assert autopause.check_campaign(campaign) is None  # 100 more, no new bounce
    for contact in contacts[200:210]:  # 10 new bounces in the next 100: 10%
        outcomes.apply(team.id, report_for(contact.email, status="5.1.1", diagnostic="550 5.1.1 no such user"),
                       "imap")
    assert Campaign.get_by_id(campaign.id).state == "paused"
    assert Notice.select().where(Notice.kind == "autopause").count() == 2


def test_rates_and_thresholds_from_settings(ctx, admin):
    team = team_with_admin()
    campaign = make_campaign(team, state="sending")
    contacts = _sent_sends(campaign, 100)
    Campaign.update(sent=100).where(Campaign.id == campaign.id).execute()
    ctx.config.update(AUTOPAUSE_BOUNCE_RATE=0.5)
    for contact in contacts[:10]:
        outcomes.apply(team.id, report_for(contact.email, status="5.1.1", diagnostic="550 5.1.1 no such user"),
                       "imap")
    assert autopause.counts(Campaign.get_by_id(campaign.id)) == {"attempted": 100, "bounced": 10, "complained": 0}
    assert Campaign.get_by_id(campaign.id).state == "sending"  # 10% < 50%
    ctx.config.update(AUTOPAUSE_BOUNCE_RATE=0.1)
    assert autopause.check_campaign(campaign)
    assert Campaign.get_by_id(campaign.id).state == "paused"


def test_a_campaign_that_completes_above_the_line_is_not_paused_but_the_admins_hear_once(ctx, admin, smtp):
    import time
    ctx.config.update(AUTOPAUSE_CHECK_SECONDS=3600)
    server = smtp(reject=("gone",))
    team = team_with_admin()
    campaign, _ = launch(team, server.port, good=160, bad=40, connections=4)  # 20%, found only at the end
    autopause._last_check[campaign.id] = time.monotonic()  # as if just checked: no check while it sends

    result = run_until_settled(campaign.id)

    campaign = Campaign.get_by_id(campaign.id)
    assert (result.outcome, campaign.state) == ("completed", "completed")
    [notice] = Notice.select().where(Notice.campaign_id == campaign.id)
    assert (notice.kind, notice.subject) == ("rates", "Campaign “Spring news” finished with too many bounces")
    assert notice.text.startswith("This campaign completed, but 40 of 200 messages bounced (20.0%")
    assert autopause.check_campaign(campaign) is None  # said once
    assert Notice.select().count() == 1


def test_bounces_arriving_by_mail_after_completion_warn_once(app, admin):
    with app.app_context():
        app.config.update(AUTOPAUSE_CHECK_SECONDS=0)
        team = team_with_admin()
        campaign = make_campaign(team, state="completed")
        Campaign.update(sent=150).where(Campaign.id == campaign.id).execute()
        contacts = _sent_sends(campaign, 150)
        for contact in contacts[:7]:
            outcomes.apply(team.id, report_for(contact.email, status="5.1.1", diagnostic="550 5.1.1 user unknown"),
                           "imap")
        assert Notice.select().count() == 0  # 7 of 150 = 4.7%: under the line
        for contact in contacts[7:12]:
            outcomes.apply(team.id, report_for(contact.email, status="5.1.1", diagnostic="550 5.1.1 user unknown"),
                           "imap")
        [notice] = Notice.select()
        assert notice.kind == "rates" and "8 of 150 messages bounced" in notice.text
        assert Campaign.get_by_id(campaign.id).state == "completed"
