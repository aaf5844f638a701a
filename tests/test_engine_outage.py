"""Issue 9 point 10: an SMTP outage is visible. While the account's server cannot be reached, the
account card and the campaign page say "Waiting for SMTP host X: connection refused since ...,
retrying" (no frozen rate), the worker logs each change of state, publishing refuses an account known
not to work and warns about one never tested, and the engine's own pauses reach the Notices page and
the Administrators' inbox."""
import email
import email.policy
import logging
import threading
import time

import pytest

from app.campaigns import publishing
from app.notices import alerts
from app.models import CaughtMessage
from app.models import Campaign
from app.models import MailingList
from app.models import Notice
from app.models import SmtpAccount
from app.models import Team
from app.models import utcnow
from app.sending import ledger
from tasks import sending as sending_tasks
from tests.conftest import free_port
from tests.conftest import soup
from tests.sending_support import TestSmtp
from tests.sending_support import launched
from tests.sending_support import make_campaign


@pytest.fixture
def acme(app, admin):
    app.config.update(SEND_RETRY_DELAYS=(0.05, 0.1), SEND_RECONNECT_DELAY=0.05, SEND_FLUSH_INTERVAL=0.05,
                      SEND_STATE_INTERVAL=0.1, SEND_ACCOUNT_FAILURE_LIMIT=1000)
    team = Team.get(Team.name == "Acme")
    team.postal_address = "1 Main Street, Springfield"
    team.save()
    return team


def wait_for(condition, seconds=20):
    give_up = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < give_up, "the condition never became true"
        time.sleep(0.02)


def test_a_server_that_is_gone_shows_as_waiting_on_the_campaign_and_the_account_then_recovers(
        app, web, acme, caplog):
    port = free_port()  # nothing listens here yet
    with app.app_context():
        campaign, contacts, account = launched(acme, 20, port, connections=2)
    results = []

    def background():
        with app.app_context():
            results.append(sending_tasks.run_campaign(campaign.id))
    caplog.set_level(logging.INFO, logger="app.sending.engine")
    thread = threading.Thread(target=background)
    thread.start()
    server = None
    try:
        wait_for(lambda: SmtpAccount.get_by_id(account.id).connection_state == "failing")
        stored = SmtpAccount.get_by_id(account.id)
        assert stored.last_error == "connection refused" and stored.failing_since is not None

        page = soup(web.get(f"/campaigns/{campaign.id}/progress"))
        waiting = page.select_one(".waiting-smtp").text
        assert waiting.startswith("Waiting for SMTP host 127.0.0.1: connection refused since ")
        assert "retrying" in waiting
        assert "/s" not in page.select_one(".stats").text.split("Rate")[1].split("Time left")[0]  # no rate shown
        card = soup(web.get("/sending/accounts")).select_one(f"#account-{account.id}")
        assert card.select_one("h2 .badge").text == "Cannot connect"
        assert "connection refused since" in card.select_one(".connection-state").text
        assert "cannot be reached: connection refused; retrying" in caplog.text

        server = TestSmtp(port=port)  # the server comes back
        thread.join(60)
    finally:
        thread.join(60)
        if server is not None:
            server.stop()

    assert results and results[0].outcome == "completed"
    assert server.handler.delivered == {c.email: 1 for c in contacts}
    stored = SmtpAccount.get_by_id(account.id)
    assert (stored.connection_state, stored.last_error, stored.failing_since) == ("ok", "", None)
    assert stored.connected_at is not None
    assert "is reachable again" in caplog.text
    # One warning per change of state, not one per retry.
    assert caplog.text.count("cannot be reached") == 1
    card = soup(web.get("/sending/accounts")).select_one(f"#account-{account.id}")
    assert card.select_one("h2 .badge").text == "Active" and card.select_one(".connection-state") is None


def test_the_engines_pauses_create_a_notice_emailed_to_the_administrators(app, acme, catcher):
    app.config.update(SEND_ACCOUNT_FAILURE_LIMIT=2, SEND_RECONNECT_DELAY=0.01)
    with app.app_context():
        dead, _, account = launched(acme, 5, free_port(), connections=1)  # every account fails: paused
        assert sending_tasks.run_campaign(dead.id).outcome == "paused"
        SmtpAccount.update(status="paused", paused_until=None).where(SmtpAccount.id == account.id).execute()
        none_left = make_campaign(acme, [MailingList.get(MailingList.team == acme)], name="Second")
        ledger.freeze_audience(none_left)
        assert sending_tasks.run_campaign(none_left.id).outcome == "paused"  # no active account at all

        notices = {n.campaign_id: n for n in Notice.select()}
        assert set(notices) == {dead.id, none_left.id}
        assert "every SMTP account of the team is paused" in notices[dead.id].text
        assert "no active SMTP account" in notices[none_left.id].text
        assert notices[dead.id].subject == "“Spring news” paused: it cannot be sent right now"
        assert alerts.email_pending() == 2
    messages = [email.message_from_bytes(m.raw, policy=email.policy.default) for m in CaughtMessage.select()]
    assert {m["To"] for m in messages} == {"admin@example.com"}
    assert {m["Subject"] for m in messages} == {"[Loft] “Spring news” paused: it cannot be sent right now",
                                               "[Loft] “Second” paused: it cannot be sent right now"}


def test_publishing_refuses_an_account_that_failed_its_test_and_warns_about_one_never_tested(app, acme):
    with app.app_context():
        campaign, _, account = launched(acme, 3, free_port())
        campaign = Campaign.get_by_id(campaign.id)
        assert publishing.publish_warnings(campaign) == [
            "The SMTP account “Loopback” has never passed a connection test. If it cannot connect, the campaign "
            "page says so and the messages wait; test it under Sending › SMTP accounts."]
        SmtpAccount.update(last_test_at=utcnow(), last_test_result=
            {"ok": False, "summary": "Connection refused"}).where(SmtpAccount.id == account.id).execute()
        problems = publishing.publish_problems(campaign)
        assert any("“Loopback” failed its last connection test" in p for p in problems)
        SmtpAccount.update(last_test_at=utcnow(), last_test_result=
            {"ok": True, "summary": "Connected"}).where(SmtpAccount.id == account.id).execute()
        assert not any("connection test" in p for p in publishing.publish_problems(campaign))
        assert publishing.publish_warnings(campaign) == []


def test_a_passing_connection_test_clears_the_waiting_state(app, acme):
    from app.senders import accounts
    from app.senders import health
    with app.app_context():
        _, _, account = launched(acme, 1, free_port())
        health.record_failure(account.id, "connection refused")
        assert [a.id for a in health.failing(acme.id)] == [account.id]
        accounts.record_test(SmtpAccount.get_by_id(account.id), True, "Connected")
        assert health.failing(acme.id) == []
        assert SmtpAccount.get_by_id(account.id).connection_state == "ok"


def test_content_that_cannot_be_built_pauses_the_campaign_with_a_notice(app, acme):
    """A body changed behind the publish checks made every run of the task fail, leaving the campaign in
    "sending" for ever; now the engine pauses it, says why, and tells the Administrators."""
    with app.app_context():
        campaign, _, _ = launched(acme, 3, free_port(), connections=1)
        Campaign.update(body="<p>{% raw %}<script>alert(1)</script>{% endraw %}</p>").where(
            Campaign.id == campaign.id).execute()
        result = sending_tasks.run_campaign(campaign.id)
        assert result.outcome == "paused"
        campaign = Campaign.get_by_id(campaign.id)
        assert campaign.state == "paused"
        assert "cannot be built into a message" in campaign.state_reason
        assert Notice.get(Notice.campaign_id == campaign.id).text.startswith("Paused by Loft")
        assert ledger.status_counts(campaign.id).get("queued") == 3  # nobody was sent anything
