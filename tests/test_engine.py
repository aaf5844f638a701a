"""The sending engine against real SMTP servers on loopback (aiosmtpd): delivery, retries with
backoff, 421 and dropped connections, bounces, account limits, caps, rotation, pause and resume."""
import datetime
import email
import os
import threading

import pytest

from app.campaigns import states
from app.consent import suppression
from app.db import db
from app.models import Campaign
from app.models import Contact
from app.models import Event
from app.models import MailingList
from app.models import Send
from app.models import SendRun
from app.models import SmtpAccount
from app.models import UsageCount
from app.models import utcnow
from app.sending import engine
from app.sending import ledger
from app.sending.lanes import DomainGate
from app.sending.lease import join_run
from app.sending.smtp import smtp_payload
from tasks import huey
from tasks import sending as sending_tasks
from tests.sending_support import launched
from tests.sending_support import make_account
from tests.sending_support import make_campaign
from tests.sending_support import make_contacts
from tests.sending_support import make_team
from tests.sending_support import run
from tests.sending_support import run_until_settled
from tests.sending_support import statuses
from tests.stack_support import sqlite_only


@pytest.fixture
def ctx(ctx):
    """conftest's ctx with fast sending timings."""
    ctx.config.update(SEND_RETRY_DELAYS=(0.05, 0.1), SEND_RECONNECT_DELAY=0.01, SEND_FLUSH_INTERVAL=0.05,
                      SEND_STATE_INTERVAL=0.1, SEND_ACCOUNT_FAILURE_LIMIT=3, SEND_MAX_IN_RUN_WAIT=5.0,
                      SEND_BATCH_SIZE=50)
    return ctx


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_every_recipient_gets_exactly_one_message_over_parallel_connections(ctx, smtp, loop):
    if loop == "uvloop" and engine.uvloop is None:
        pytest.skip("uvloop is not installed: the engine runs on asyncio's loop")
    ctx.config.update(SEND_EVENT_LOOP=loop)
    server = smtp()
    team = make_team()
    campaign, contacts, account = launched(team, 120, server.port, connections=4)

    result = run(campaign.id)

    assert result.outcome == "completed"
    assert server.handler.delivered == {c.email: 1 for c in contacts}
    assert server.handler.sessions == 4  # one connection per allowed connection, reused for many messages
    campaign = Campaign.get_by_id(campaign.id)
    assert campaign.state == "completed" and campaign.sent == 120 and campaign.failed == 0
    assert statuses(campaign) == {"sent": 120}
    send = Send.get(Send.campaign == campaign, Send.email == contacts[0].email)
    assert send.smtp_account_id == account.id and send.sent_at is not None and send.attempts == 1
    assert send.message_id.startswith("<") and send.message_id.endswith(">")
    mail_from, rcpt, raw = next(m for m in server.handler.messages if m[1] == contacts[0].email)
    assert mail_from == "news@acme.test"
    message = email.message_from_bytes(raw)
    assert message["Message-ID"] == send.message_id
    assert Event.select().where((Event.type == "sent") & (Event.campaign_id == campaign.id)).count() == 120
    usage = UsageCount.get(UsageCount.team == team)  # one upsert per flush, into one row: marketing, From domain
    assert (usage.messages, usage.month, usage.stream, usage.domain) == (120, utcnow().strftime("%Y-%m"),
                                                                          "marketing", "acme.test")


def test_dot_stuffing_for_the_raw_data_write():
    payload = smtp_payload(b".Subject: x\r\n\r\n.hidden\r\nline\r\n..two\r\nend")
    assert payload == b"..Subject: x\r\n\r\n..hidden\r\nline\r\n...two\r\nend\r\n.\r\n"
    assert smtp_payload(b"A: b\r\n\r\nok\r\n") == b"A: b\r\n\r\nok\r\n.\r\n"


def test_messages_have_crlf_line_endings_only_even_with_hostile_content(ctx, smtp):
    """The engine writes the factory's bytes as they are (no normalising pass), so check the premise."""
    server = smtp()
    team = make_team()
    campaign, contacts, _ = launched(team, 2, server.port)
    Campaign.update(body="<p>line\nbreak\rcarriage\r\n.dot at start</p>\n.\n..\n<pre>\n.x\n</pre>",
                    subject="Hi {{ contact.name }}\n.evil").where(Campaign.id == campaign.id).execute()
    Contact.update(name="Eve\r\n.\r\nBcc: x@evil.test\nZ").where(Contact.id == contacts[0].id).execute()

    assert run(campaign.id).outcome == "completed"

    for _, _, raw in server.handler.messages:
        assert raw.count(b"\n") == raw.count(b"\r\n") == raw.count(b"\r")
        assert b"\nBcc:" not in raw
    assert server.handler.total() == 2


def test_greylisting_451_is_retried_with_backoff_then_delivered_once(ctx, smtp):
    server = smtp(greylist=True)
    team = make_team()
    campaign, contacts, _ = launched(team, 30, server.port)

    result = run(campaign.id)

    assert result.outcome == "completed"
    assert server.handler.refused[451] == 30
    assert server.handler.delivered == {c.email: 1 for c in contacts}
    assert {s.attempts for s in Send.select().where(Send.campaign == campaign)} == {2}
    assert statuses(campaign) == {"sent": 30}


def test_421_with_closed_connection_and_dropped_connections_still_deliver_everyone_once(ctx, smtp):
    # Every 3rd message on a connection gets 421 and a closed connection; every 4th on the other
    # server loses its connection after the data was sent. Enough attempts that nobody runs out.
    ctx.config.update(SEND_RETRY_DELAYS=(0.01,) * 12)
    closing = smtp(close_421_every=3)
    dropping = smtp(drop_every=4)
    team = make_team()
    mailing_list = MailingList.create(team=team, name="All")
    contacts = make_contacts(team, 80, mailing_list)
    make_account(team, closing.port, name="Closes with 421", max_connections=3)
    make_account(team, dropping.port, name="Drops mid-DATA", max_connections=3)
    campaign = make_campaign(team, [mailing_list])
    ledger.freeze_audience(campaign)

    result = run_until_settled(campaign.id)

    assert result.outcome == "completed"
    assert closing.handler.refused[421] > 0 and dropping.handler.refused[0] > 0
    assert closing.handler.sessions > 3 and dropping.handler.sessions > 3  # reconnected after each drop
    both = closing.handler.delivered + dropping.handler.delivered
    assert both == {c.email: 1 for c in contacts}
    assert statuses(campaign) == {"sent": 80}
    retries = sum(s.attempts - 1 for s in Send.select().where(Send.campaign == campaign))
    assert retries == closing.handler.refused[421] + dropping.handler.refused[0]


def test_temporary_failures_give_up_after_the_last_attempt_and_can_be_requeued(ctx, smtp):
    from app.campaigns import publishing
    server = smtp(always_451=("reader3@",))
    team = make_team()
    campaign, contacts, _ = launched(team, 5, server.port)

    result = run_until_settled(campaign.id)

    assert result.outcome == "completed"
    failed = Send.get(Send.campaign == campaign, Send.email == "reader3@example.com")
    assert failed.status == "failed" and failed.attempts == 3  # SEND_RETRY_DELAYS has two delays
    assert failed.error.startswith("451 4.3.0")
    assert server.handler.seen_rcpt["reader3@example.com"] == 3
    campaign = Campaign.get_by_id(campaign.id)
    assert campaign.sent == 4 and campaign.failed == 1
    assert [s.email for s in ledger.failed_sends(campaign)] == ["reader3@example.com"]

    server.handler.always_451 = ()
    count, campaign = publishing.requeue_failed(campaign)
    assert count == 1 and campaign.state == "sending"
    assert run_until_settled(campaign.id).outcome == "completed"
    assert server.handler.delivered["reader3@example.com"] == 1
    assert sum(server.handler.delivered.values()) == 5


def test_permanent_5xx_is_a_bounce_and_user_unknown_marks_the_contact_bounced(ctx, smtp):
    server = smtp(reject=("reader1@", "reader2@"))
    team = make_team()
    campaign, contacts, _ = launched(team, 6, server.port)

    assert run(campaign.id).outcome == "completed"

    bounced = Send.select().where((Send.campaign == campaign) & (Send.status == "bounced")).order_by(Send.id)
    assert [s.email for s in bounced] == ["reader1@example.com", "reader2@example.com"]
    assert all(s.error.startswith("550 5.1.1") and s.attempts == 1 for s in bounced)
    assert Contact.get(Contact.email == "reader1@example.com").status == "bounced"
    events = Event.select().where((Event.type == "bounced") & (Event.campaign_id == campaign.id))
    assert {e.data["hard"] for e in events} == {True} and events.count() == 2
    assert Campaign.get_by_id(campaign.id).failed == 2
    assert sum(server.handler.delivered.values()) == 4


def test_the_engine_alone_leaves_refusals_to_its_hooks_inside_the_flush_transaction(ctx, smtp):
    """Without hooks a 5xx is only a bounced send; the hooks get each refusal in the write's transaction."""
    server = smtp(reject=("reader1@",))
    team = make_team()
    campaign, _, _ = launched(team, 3, server.port)
    assert engine.run_campaign(campaign.id).outcome == "completed"
    assert statuses(campaign) == {"sent": 2, "bounced": 1}
    assert Contact.get(Contact.email == "reader1@example.com").status == "active"  # nobody classified it
    assert not Event.select().where((Event.type == "bounced") & (Event.campaign_id == campaign.id)).exists()

    seen = []
    hooks = engine.Hooks(
        on_refusals=lambda refusals: seen.append(("refusals", db.in_transaction(),
                                                  [(Send.get_by_id(r[0]).email, r[1]) for r in refusals])),
        after_flush=lambda campaign_id: seen.append(("flush", db.in_transaction(), campaign_id)),
        on_completed=lambda campaign_id: seen.append(("completed", campaign_id)))
    other, _, _ = launched(make_team("Hooked"), 3, server.port)
    assert engine.run_campaign(other.id, hooks=hooks).outcome == "completed"
    assert ("refusals", True, [("reader1@example.com", 550)]) in seen
    assert ("flush", False, other.id) in seen
    assert seen[-1] == ("completed", other.id)


def test_a_5xx_that_is_not_about_the_address_bounces_without_blaming_the_contact(ctx, smtp):
    server = smtp(reject=("reader0@",), reject_reply="554 5.7.1 Message rejected as spam by content filter")
    team = make_team()
    campaign, _, _ = launched(team, 2, server.port)
    run(campaign.id)
    send = Send.get(Send.campaign == campaign, Send.email == "reader0@example.com")
    assert send.status == "bounced"
    assert Contact.get(Contact.email == "reader0@example.com").status == "active"


def test_account_limit_reply_pauses_the_account_and_the_campaign_without_blaming_anyone(ctx, smtp):
    server = smtp(limit_after=5)
    team = make_team()
    campaign, contacts, account = launched(team, 20, server.port, connections=1)

    result = run(campaign.id)

    assert result.outcome == "paused"
    assert server.handler.total() == 5
    account = SmtpAccount.get_by_id(account.id)
    assert account.status == "paused" and "daily sending limit" in account.paused_reason
    assert account.paused_until > utcnow() + datetime.timedelta(hours=23)
    campaign = Campaign.get_by_id(campaign.id)
    assert campaign.state == "paused"
    assert "Loopback" in campaign.state_reason and "daily sending limit" in campaign.state_reason
    assert statuses(campaign) == {"sent": 5, "queued": 15}  # nobody bounced, nobody failed
    assert Contact.select().where(Contact.status != "active").count() == 0
    assert {s.attempts for s in Send.select().where((Send.campaign == campaign) & (Send.status == "queued"))} == {0}


def test_account_limit_on_one_account_moves_the_rest_to_another(ctx, smtp):
    limited = smtp(limit_after=3)
    other = smtp()
    team = make_team()
    mailing_list = MailingList.create(team=team, name="All")
    contacts = make_contacts(team, 30, mailing_list)
    icloud = make_account(team, limited.port, name="iCloud", max_connections=1)
    make_account(team, other.port, name="Relay", max_connections=2)
    campaign = make_campaign(team, [mailing_list])
    ledger.freeze_audience(campaign)

    result = run_until_settled(campaign.id)

    assert result.outcome == "completed"
    assert limited.handler.delivered + other.handler.delivered == {c.email: 1 for c in contacts}
    assert limited.handler.total() == 3
    assert SmtpAccount.get_by_id(icloud.id).status == "paused"


def test_repeated_connection_failures_pause_the_account_then_the_campaign_with_the_reason(ctx):
    from tests.conftest import free_port
    team = make_team()
    campaign, _, account = launched(team, 10, free_port(), connections=2)  # nothing listens there

    result = run(campaign.id)

    assert result.outcome == "paused"
    account = SmtpAccount.get_by_id(account.id)
    assert account.status == "paused" and "could not connect" in account.paused_reason
    campaign = Campaign.get_by_id(campaign.id)
    assert campaign.state == "paused" and "could not connect to 127.0.0.1" in campaign.state_reason
    assert statuses(campaign) == {"queued": 10}


def test_no_active_account_pauses_the_campaign_with_the_reason(ctx):
    team = make_team()
    campaign, _, account = launched(team, 3, 2525)
    SmtpAccount.update(status="paused", paused_reason="Paused by you").where(SmtpAccount.id == account.id).execute()

    result = run(campaign.id)

    assert result.outcome == "paused"
    campaign = Campaign.get_by_id(campaign.id)
    assert campaign.state == "paused" and "“Loopback” is paused: Paused by you" in campaign.state_reason


def test_weighted_rotation_across_accounts(ctx, smtp):
    heavy, light = smtp(), smtp()
    team = make_team()
    mailing_list = MailingList.create(team=team, name="All")
    make_contacts(team, 40, mailing_list)
    make_account(team, heavy.port, name="Heavy", weight=3, max_connections=2)
    make_account(team, light.port, name="Light", weight=1, max_connections=2)
    campaign = make_campaign(team, [mailing_list])
    ledger.freeze_audience(campaign)

    assert run(campaign.id).outcome == "completed"
    assert (heavy.handler.total(), light.handler.total()) == (30, 10)


def test_hourly_cap_counts_earlier_sends_and_stops_at_the_limit(ctx, smtp):
    server = smtp()
    team = make_team()
    campaign, contacts, account = launched(team, 8, server.port, per_hour=5)
    # Two messages went through this account half an hour ago (another campaign).
    earlier = make_campaign(team, state="completed")
    for contact in contacts[:2]:
        Send.create(campaign=earlier, contact=contact, email=contact.email, status="sent",
                    smtp_account=account, sent_at=utcnow() - datetime.timedelta(minutes=30))

    result = run(campaign.id)
    assert result.outcome == "waiting" and result.again
    assert server.handler.total() == 3
    assert statuses(campaign) == {"sent": 3, "queued": 5}
    assert Campaign.get_by_id(campaign.id).state == "sending"


def test_per_second_limit_is_respected(ctx, smtp):
    server = smtp()
    team = make_team()
    campaign, _, _ = launched(team, 25, server.port, per_second=10, connections=4)

    assert run(campaign.id).outcome == "completed"

    # The server stamps a message when its DATA ends, so a stamp is the token's time plus that
    # message's transit: a slow first handshake can land message 1 beside message 2. A one-second
    # window may therefore hold 10, one token of burst and one late arrival; and 25 messages at 10 a
    # second after one token of burst span at least 2.3 s (without the limit they take ~0.2 s).
    times = sorted(server.handler.accepted_at)
    most_in_a_second = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert len(times) == 25 and most_in_a_second <= 12
    assert times[-1] - times[0] >= 2.0


def test_parallel_deliveries_per_recipient_domain_are_limited(ctx, smtp):
    ctx.config.update(SEND_DOMAIN_LIMITS={"gmail.com": 2})
    server = smtp(delay=0.03, track_domains=True)
    team = make_team()
    mailing_list = MailingList.create(team=team, name="All")
    contacts = make_contacts(team, 60, mailing_list, domains=["gmail.com", "a.example", "b.example"])
    make_account(team, server.port, max_connections=8)
    campaign = make_campaign(team, [mailing_list])
    ledger.freeze_audience(campaign)

    assert run(campaign.id).outcome == "completed"

    assert server.handler.delivered == {c.email: 1 for c in contacts}
    assert server.handler.max_active["gmail.com"] <= 2
    assert server.handler.max_active_total > 2  # the other domains did go in parallel


def test_contacts_that_left_or_were_suppressed_after_publishing_are_skipped(ctx, smtp):
    server = smtp()
    team = make_team()
    campaign, contacts, _ = launched(team, 5, server.port)
    Contact.update(status="unsubscribed").where(Contact.id == contacts[1].id).execute()
    suppression.suppress(team.id, "email", contacts[2].email)
    contacts[3].delete_instance()

    assert run(campaign.id).outcome == "completed"

    assert set(server.handler.delivered) == {contacts[0].email, contacts[4].email}
    skipped = {s.email: s.error for s in Send.select().where((Send.campaign == campaign) & (Send.status == "skipped"))}
    assert set(skipped) == {contacts[1].email, contacts[2].email, contacts[3].email}
    assert "unsubscribed" in skipped[contacts[1].email] and "suppression" in skipped[contacts[2].email]


def test_pause_stops_within_a_second_and_resume_finishes_without_duplicates(ctx, smtp):
    server = smtp(delay=0.01)
    team = make_team()
    campaign, contacts, _ = launched(team, 300, server.port, connections=2)
    results = []

    def background():
        with ctx.app_context():
            results.append(run(campaign.id))
    thread = threading.Thread(target=background)
    thread.start()
    while server.handler.total() < 20 and thread.is_alive():
        thread.join(0.01)
    states.transition(Campaign.get_by_id(campaign.id), "paused", "Paused by a test")
    thread.join(30)

    assert not thread.is_alive() and results and results[0].outcome == "stopped", results
    delivered_at_pause = server.handler.total()
    assert delivered_at_pause < 300
    counts = statuses(campaign)
    assert counts == {"sent": delivered_at_pause, "queued": 300 - delivered_at_pause}

    states.transition(Campaign.get_by_id(campaign.id), "sending")
    assert run(campaign.id).outcome == "completed"
    assert server.handler.delivered == {c.email: 1 for c in contacts}


def test_a_new_run_queues_sends_left_in_flight_by_a_dead_one(ctx, smtp):
    server = smtp()
    team = make_team()
    campaign, contacts, _ = launched(team, 10, server.port)
    # A dead run claimed three sends (status "sending") and never recorded them.
    claimed = [s.id for s in Send.select().where(Send.campaign == campaign).order_by(Send.id).limit(3)]
    Send.update(status="sending", attempts=1).where(Send.id << claimed).execute()

    result = run(campaign.id)

    assert result.recovered == 3 and result.outcome == "completed"
    assert server.handler.delivered == {c.email: 1 for c in contacts}
    assert {s.attempts for s in Send.select().where(Send.id << claimed)} == {2}


def test_stopped_or_other_state_campaigns_are_not_sent(ctx, smtp):
    server = smtp()
    team = make_team()
    campaign, _, _ = launched(team, 3, server.port)
    Campaign.update(state="paused").where(Campaign.id == campaign.id).execute()
    assert run(campaign.id).outcome == "stopped"
    assert server.handler.total() == 0


def test_deadline_hands_back_with_the_rest_queued(ctx, smtp):
    server = smtp(delay=0.005)
    team = make_team()
    campaign, contacts, _ = launched(team, 200, server.port, connections=2)

    first = run(campaign.id, deadline_seconds=0)  # claims nothing after the deadline

    assert first.outcome == "deadline" and first.again
    assert "sending" not in statuses(campaign)
    assert run_until_settled(campaign.id).outcome == "completed"
    assert server.handler.delivered == {c.email: 1 for c in contacts}


def test_the_task_runs_the_engine_and_completes_the_campaign(ctx, smtp):
    server = smtp()
    team = make_team()
    campaign, contacts, _ = launched(team, 12, server.port)

    sending_tasks.send_campaign(campaign.id)  # immediate mode: runs inline

    assert Campaign.get_by_id(campaign.id).state == "completed"
    assert server.handler.delivered == {c.email: 1 for c in contacts}


@pytest.mark.parametrize("runs", [1, os.cpu_count() or 1], ids=["alone: signed on two threads", "a run per core: signed on the loop"])
def test_messages_from_a_verified_domain_are_dkim_signed(ctx, smtp, runs):
    import dkim
    from app.models import SenderDomain
    from app.senders import domains
    ctx.config["SEND_RUNS_PER_CAMPAIGN"] = runs
    server = smtp()
    team = make_team()
    row = domains.add_domain(team, "acme.test")
    SenderDomain.update(verified_at=utcnow()).where(SenderDomain.id == row.id).execute()
    row = SenderDomain.get_by_id(row.id)
    campaign, contacts, _ = launched(team, 6, server.port)

    assert run(campaign.id).outcome == "completed"

    record = domains.dkim_record(row).encode()
    dns = {f"{row.dkim_selector}._domainkey.acme.test.".encode(): record}
    assert len(server.handler.messages) == 6
    for _, rcpt, raw in server.handler.messages:
        assert raw.startswith(b"DKIM-Signature:")
        assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: dns.get(name))


def test_an_undecryptable_dkim_key_pauses_the_campaign_instead_of_sending_unsigned(ctx, smtp):
    from app.models import SenderDomain
    from app.senders import domains
    server = smtp()
    team = make_team()
    row = domains.add_domain(team, "acme.test")
    SenderDomain.update(verified_at=utcnow(), dkim_private_key="gAAAA-not-a-valid-token").where(
        SenderDomain.id == row.id).execute()
    campaign, _, _ = launched(team, 2, server.port)

    assert run(campaign.id).outcome == "paused"
    campaign = Campaign.get_by_id(campaign.id)
    assert campaign.state == "paused" and "DKIM" in campaign.state_reason
    assert server.handler.total() == 0


def test_a_run_past_the_campaigns_limit_is_busy_until_a_dead_runs_lease_runs_out(ctx, smtp):
    ctx.config.update(SEND_RUNS_PER_CAMPAIGN=1)
    server = smtp()
    team = make_team()
    campaign, contacts, _ = launched(team, 5, server.port)
    assert join_run(campaign.id, "other-worker", 1, 15)

    busy = run(campaign.id)

    assert busy.outcome == "busy" and busy.again and 14 < busy.delay <= 15.5 and not busy.here
    assert server.handler.total() == 0
    # Through the task, even one sent to let another run join: it comes back once, when that lease would run out,
    # and not again after that (a long live run must not collect a chain of waiting tasks; the minute tick looks again).
    for after_busy, comes_back in ((0, [(campaign.id, 1, False)]), (1, [])):
        huey.flush()
        sending_tasks.send_campaign(campaign.id, after_busy, True)
        assert [task.args for task in huey.scheduled() if task.name == "sending.send_campaign"] == comes_back
    huey.flush()
    # The other run died 20 seconds ago (kill -9): its lease has run out and a new run takes its place.
    SendRun.update(heartbeat_at=utcnow() - datetime.timedelta(seconds=20)).where(
        SendRun.token == "other-worker").execute()
    assert run(campaign.id).outcome == "completed"
    assert server.handler.delivered == {c.email: 1 for c in contacts}
    assert SendRun.select().count() == 0  # the dead run's row removed, the finished one's left


def test_a_second_run_within_the_limit_sends_beside_the_first(ctx, smtp):
    ctx.config.update(SEND_RUNS_PER_CAMPAIGN=2)
    server = smtp()
    team = make_team()
    campaign, contacts, _ = launched(team, 5, server.port)
    assert join_run(campaign.id, "other-worker", 2, 15)  # alive, holding nothing yet

    result = run(campaign.id)

    assert result.outcome == "completed"
    assert server.handler.delivered == {c.email: 1 for c in contacts}


def test_a_server_that_goes_silent_times_out_and_the_message_is_retried(ctx, smtp):
    ctx.config.update(SEND_SMTP_TIMEOUT=0.3)
    server = smtp(stall_first=3.0)
    team = make_team()
    campaign, contacts, _ = launched(team, 3, server.port, connections=3)

    assert run_until_settled(campaign.id).outcome == "completed"

    assert server.handler.delivered == {c.email: 1 for c in contacts}
    assert {s.attempts for s in Send.select().where(Send.campaign == campaign)} == {2}


def test_the_minute_tick_starts_due_scheduled_campaigns_and_resumes_stalled_ones(ctx, smtp):
    server = smtp()
    team = make_team()
    mailing_list = MailingList.create(team=team, name="All")
    contacts = make_contacts(team, 4, mailing_list)
    make_account(team, server.port)
    due = make_campaign(team, [mailing_list], state="scheduled", name="Due",
                        scheduled_at=utcnow() - datetime.timedelta(minutes=1))
    later = make_campaign(team, [mailing_list], state="scheduled", name="Later",
                          scheduled_at=utcnow() + datetime.timedelta(hours=1))
    empty = make_campaign(team, [], state="scheduled", name="Nobody",
                          scheduled_at=utcnow() - datetime.timedelta(minutes=1))
    stalled = make_campaign(team, [mailing_list], name="Stalled")  # "sending", its worker died
    ledger.freeze_audience(stalled)
    Send.update(status="sending", attempts=1).where(Send.campaign == stalled).execute()
    SendRun.create(team=team, campaign=stalled, token="dead-worker",
                   heartbeat_at=utcnow() - datetime.timedelta(minutes=5))

    sending_tasks.tick()  # immediate mode: runs inline, and so do the sends it enqueues

    assert Campaign.get_by_id(due.id).state == "completed"
    assert Campaign.get_by_id(later.id).state == "scheduled"
    empty = Campaign.get_by_id(empty.id)
    assert empty.state == "draft" and "could not start" in empty.state_reason
    assert Campaign.get_by_id(stalled.id).state == "completed"
    assert server.handler.delivered == {c.email: 2 for c in contacts}  # once per campaign


def test_domain_gate_limits_each_domain_and_forgets_idle_ones():
    import asyncio
    gate = DomainGate(default=3, limits={"gmail.com": 2}, connections=8)
    running = {"gmail.com": 0, "other.example": 0}
    most = {"gmail.com": 0, "other.example": 0}

    async def deliver(domain):
        await gate.acquire(domain)
        try:
            running[domain] += 1
            most[domain] = max(most[domain], running[domain])
            await asyncio.sleep(0.001)
            running[domain] -= 1
        finally:
            gate.release(domain)

    async def main():
        await asyncio.gather(*(deliver(d) for d in ["gmail.com", "other.example"] * 20))
    asyncio.run(main())

    assert most == {"gmail.com": 2, "other.example": 3}
    assert gate.active == {}  # nothing kept for domains with nothing in progress
    wide = DomainGate(default=10, limits={}, connections=4)
    assert wide.limit("x.example") >= wide.connections  # unreachable limit: no bookkeeping at all


def test_ab_test_sample_goes_first_and_the_rest_waits_for_the_winner(ctx, smtp):
    from app.campaigns import ab_testing
    from app.models import Variant
    server = smtp()
    team = make_team()
    campaign, contacts, _ = launched(team, 20, server.port)
    Campaign.update(ab_test={"sample_percent": 20, "wait_minutes": 60, "metric": "clicks"}).where(
        Campaign.id == campaign.id).execute()
    Variant.create(campaign=campaign, label="A", subject="Subject A", body=campaign.body)
    b = Variant.create(campaign=campaign, label="B", subject="Subject B", body=campaign.body)
    ab_testing.split_for_ab_test(Campaign.get_by_id(campaign.id))

    first = run(campaign.id)

    assert first.outcome == "held" and not first.again
    assert server.handler.total() == 4
    subjects = sorted(email.message_from_bytes(raw)["Subject"] for _, _, raw in server.handler.messages)
    assert subjects == ["Subject A", "Subject A", "Subject B", "Subject B"]  # the sample goes to the variants in turn
    labels = {v.id: v.label for v in Variant.select().where(Variant.campaign == campaign)}
    variant_of = {s.email: labels[s.variant_id] for s in Send.select().where(
        (Send.campaign == campaign) & (Send.status == "sent"))}
    for _, rcpt, raw in server.handler.messages:  # each got the subject of the variant it was given
        assert email.message_from_bytes(raw)["Subject"] == f"Subject {variant_of[rcpt]}"
    assert Campaign.get_by_id(campaign.id).state == "sending"
    assert statuses(campaign) == {"sent": 4, "held": 16}
    SmtpAccount.update(status="paused").execute()  # a waiting campaign needs no account: it is not paused
    assert run(campaign.id).outcome == "held" and server.handler.total() == 4  # the minute tick meanwhile
    SmtpAccount.update(status="active").execute()

    clicker = Send.select().where((Send.campaign == campaign) & (Send.variant == b)).first()
    Event.create(team=team, contact=clicker.contact, campaign_id=campaign.id, type="clicked")
    assert ab_testing.decide_ab_winner(Campaign.get_by_id(campaign.id)).label == "B"
    assert run(campaign.id).outcome == "completed"

    assert server.handler.delivered == {c.email: 1 for c in contacts}
    rest = [email.message_from_bytes(raw)["Subject"] for _, _, raw in server.handler.messages[4:]]
    assert rest == ["Subject B"] * 16


@sqlite_only("another process holds SQLite's one write lock; PostgreSQL locks rows, not the database")
def test_a_locked_database_delays_claims_and_results_but_loses_nothing(ctx, smtp, caplog):
    import sqlite3
    ctx.config.update(SEND_DB_BUSY_MS=50)
    server = smtp(delay=0.002)
    team = make_team()
    campaign, contacts, _ = launched(team, 150, server.port, connections=2)
    path = ctx.config["DATABASE_URL"].removeprefix("sqlite:///")
    results = []

    def background():
        with ctx.app_context():
            results.append(run(campaign.id))
    thread = threading.Thread(target=background)
    thread.start()
    while server.handler.total() < 30 and thread.is_alive():
        thread.join(0.005)
    blocker = sqlite3.connect(path, timeout=10)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock for a while (an import, say)
    thread.join(1.0)
    blocker.rollback()
    blocker.close()
    thread.join(60)

    assert results and results[0].outcome == "completed"
    assert server.handler.delivered == {c.email: 1 for c in contacts}
    assert statuses(campaign) == {"sent": 150}
    assert Campaign.get_by_id(campaign.id).sent == 150
    assert "will retry" in caplog.text or "claiming sends failed" in caplog.text


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # loopback test server
def test_the_account_login_is_used_and_a_refused_one_pauses_the_account_at_once(ctx, smtp):
    from app import security
    server = smtp(login=("ada@acme.test", "app-specific-password"))
    team = make_team()
    campaign, contacts, account = launched(team, 5, server.port, username="ada@acme.test",
                                           password=security.encrypt("app-specific-password"))
    assert run(campaign.id).outcome == "completed"
    assert server.handler.delivered == {c.email: 1 for c in contacts}

    other, _, wrong = launched(make_team("Other"), 3, server.port, username="ada@acme.test",
                               password=security.encrypt("an old password"))
    assert run(other.id).outcome == "paused"
    wrong = SmtpAccount.get_by_id(wrong.id)
    assert wrong.status == "paused" and wrong.paused_until is None  # a person must fix the password
    assert "refused the login: 535" in wrong.paused_reason
    assert "refused the login" in Campaign.get_by_id(other.id).state_reason
    assert statuses(other) == {"queued": 3}


def test_starttls_and_login_over_it_and_an_unverifiable_certificate_refused(ctx, smtp):
    from app import security
    server = smtp(starttls=True, login=("ada@acme.test", "secret"))
    team = make_team()
    login = dict(tls_mode="starttls", username="ada@acme.test", password=security.encrypt("secret"))
    ctx.config.update(SMTP_VALIDATE_CERTS=False)  # the test server's certificate is self-signed
    campaign, contacts, _ = launched(team, 4, server.port, **login)
    assert run(campaign.id).outcome == "completed"
    assert server.handler.delivered == {c.email: 1 for c in contacts}

    ctx.config.update(SMTP_VALIDATE_CERTS=True)
    other, _, account = launched(make_team("Other"), 2, server.port, **login)
    assert run(other.id).outcome == "paused"
    account = SmtpAccount.get_by_id(account.id)
    assert account.paused_until is None  # not retried by itself: a person must look at the certificate
    assert "could not connect" in account.paused_reason and "CERTIFICATE_VERIFY_FAILED" in account.paused_reason
    assert server.handler.total() == 4


@sqlite_only("another process holds SQLite's one write lock; PostgreSQL locks rows, not the database")
def test_no_more_than_the_unrecorded_allowance_goes_out_while_results_cannot_be_written(ctx, smtp, caplog):
    """Issue 9 points 9 and 11: while another writer holds the database (or it is full or read-only),
    the run stops starting deliveries once SEND_MAX_UNRECORDED are unwritten, and resumes when a
    write succeeds again; nobody is skipped or mailed twice."""
    import logging
    import sqlite3
    import time
    ctx.config.update(SEND_DB_BUSY_MS=50, SEND_MAX_UNRECORDED=10, SEND_LEASE_SECONDS=120)
    server = smtp(delay=0.002)
    team = make_team()
    campaign, contacts, _ = launched(team, 400, server.port, connections=3)
    results = []

    def background():
        with ctx.app_context():
            results.append(run(campaign.id))
    caplog.set_level(logging.WARNING, logger="app.sending.engine")
    thread = threading.Thread(target=background)
    thread.start()
    while server.handler.total() < 30 and thread.is_alive():
        thread.join(0.005)
    blocker = sqlite3.connect(ctx.config["DATABASE_URL"].removeprefix("sqlite:///"), timeout=10)
    blocker.execute("BEGIN IMMEDIATE")  # nothing can be written now
    at_lock = server.handler.total()
    last, quiet_since = at_lock, time.monotonic()
    while time.monotonic() - quiet_since < 1.0:  # until the sink hears nothing for a second
        thread.join(0.05)
        if server.handler.total() != last:
            last, quiet_since = server.handler.total(), time.monotonic()
    sent_while_locked = server.handler.total() - at_lock
    assert thread.is_alive(), results  # waiting, not given up
    blocker.rollback()
    blocker.close()
    thread.join(60)

    assert sent_while_locked <= 10
    assert results and results[0].outcome == "completed"
    assert server.handler.total() > at_lock + sent_while_locked  # it resumed after the lock
    assert server.handler.delivered == {c.email: 1 for c in contacts}
    assert statuses(campaign) == {"sent": 400}
    assert Campaign.get_by_id(campaign.id).sent == 400
    assert "no new delivery starts until they are written" in caplog.text
    assert "sending resumes" in caplog.text


def test_results_are_written_when_half_the_allowance_waits_not_only_on_the_timer(ctx, smtp):
    """The flush is bounded by count as well as time: with a timer far too slow to keep up, the run
    still finishes promptly because every SEND_MAX_UNRECORDED / 2 outcomes trigger a write."""
    ctx.config.update(SEND_FLUSH_INTERVAL=30, SEND_MAX_UNRECORDED=8)
    server = smtp()
    team = make_team()
    campaign, contacts, _ = launched(team, 200, server.port, connections=2)
    writes = []
    original = engine.Run.write

    def counting_write(self, outcomes):
        writes.append(len(outcomes))
        assert self.unrecorded() <= self.unrecorded_limit
        return original(self, outcomes)
    engine.Run.write = counting_write
    try:
        result = run(campaign.id)
    finally:
        engine.Run.write = original
    assert result.outcome == "completed"
    assert server.handler.delivered == {c.email: 1 for c in contacts}
    assert max(writes) <= 8 and sum(writes) >= 200


@pytest.fixture
def full_disk(tmp_path):
    """A small tmpfs for the database, so the test can fill the filesystem for real (root only)."""
    import subprocess
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode(errors='replace').strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_sending_until_results_can_be_written_again(full_disk, smtp, caplog):
    """Issue 9 point 11 on a real full filesystem: once the database cannot grow, no more than the
    unrecorded allowance goes out; when space is freed, sending resumes and everyone gets it once."""
    import logging
    import sqlite3
    import time

    from app import create_app
    from app.cli import migrate
    from app.db import db
    path = full_disk / "loft.db"
    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "DATABASE_URL": f"sqlite:///{path}",
                      "BASE_URL": "http://loft.test", "MAIL_ALLOW_PRIVATE": True})
    app.config.update(SEND_RETRY_DELAYS=(0.05,), SEND_RECONNECT_DELAY=0.01, SEND_FLUSH_INTERVAL=0.05,
                      SEND_STATE_INTERVAL=0.1, SEND_BATCH_SIZE=50, SEND_MAX_UNRECORDED=10, SEND_LEASE_SECONDS=120)
    server = smtp(delay=0.002)
    filler = full_disk / "filler"
    thread = None
    try:
        with app.app_context():
            migrate()
            campaign, contacts, _ = launched(make_team(), 300, server.port, connections=3)
        results = []

        def background():
            with app.app_context():
                results.append(run(campaign.id))
        caplog.set_level(logging.WARNING, logger="app.sending.engine")
        thread = threading.Thread(target=background)
        thread.start()
        while server.handler.total() < 30 and thread.is_alive():
            thread.join(0.005)
        # Empty the WAL (so every new write must grow a file), then fill the filesystem.
        sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
        with open(filler, "wb", buffering=0) as f:  # unbuffered: nothing left to flush at close
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        at_full = server.handler.total()
        last, quiet_since = at_full, time.monotonic()
        while time.monotonic() - quiet_since < 1.0:
            thread.join(0.05)
            if server.handler.total() != last:
                last, quiet_since = server.handler.total(), time.monotonic()
        sent_while_full = server.handler.total() - at_full
        assert thread.is_alive(), results
        filler.unlink()  # space again
        thread.join(60)

        assert sent_while_full <= 10
        assert "no new delivery starts until they are written" in caplog.text
        assert "full" in caplog.text  # "database or disk is full"
        assert results and results[0].outcome == "completed"
        assert server.handler.delivered == {c.email: 1 for c in contacts}
        with app.app_context():
            assert statuses(campaign) == {"sent": 300}
    finally:
        if filler.exists():
            filler.unlink()
        if thread is not None:
            thread.join(60)  # never leave the run behind on a filesystem about to be unmounted
        db.close()
