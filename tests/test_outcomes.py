"""Applying bounces and complaints: real campaigns sent by the engine through a
real SMTP server on loopback, the returned messages wrapped the way a bounce
mailbox receives them, parsed and applied. Matching by token, Message-ID and
address; each kind's consequences; idempotency; team isolation."""
import datetime

import pytest

from app.campaigns import states
from app.consent import suppression
from app.bounces import outcomes
from app.bounces.parse import parse_message
from app.models import Campaign
from app.models import Contact
from app.models import Event
from app.models import MailingList
from app.models import Send
from app.models import SmtpAccount
from app.models import Subscription
from app.models import Suppression
from app.models import utcnow
from tasks import sending as sending_tasks
from tests.bounces_support import arf
from tests.bounces_support import dsn
from tests.sending_support import TestSmtp
from tests.sending_support import launched
from tests.sending_support import make_team


@pytest.fixture
def ctx(ctx):
    """conftest's ctx with fast sending timings."""
    ctx.config.update(SEND_RETRY_DELAYS=(0.05, 0.1), SEND_RECONNECT_DELAY=0.01, SEND_FLUSH_INTERVAL=0.05,
                      SEND_STATE_INTERVAL=0.1, SEND_BATCH_SIZE=50)
    return ctx


@pytest.fixture
def sent(ctx):
    """A team whose 4-recipient campaign was really sent; the raw messages as the server got them."""
    server = TestSmtp()
    try:
        team = make_team()
        campaign, contacts, account = launched(team, 4, server.port)
        assert sending_tasks.run_campaign(campaign.id).outcome == "completed"
        raw = {recipient: data for _, recipient, data in server.handler.messages}
    finally:
        server.stop()
    return team, Campaign.get_by_id(campaign.id), contacts, account, raw


def events(contact, type):
    return [e.data for e in Event.select().where((Event.contact == contact) & (Event.type == type))]


def contact(c):
    return Contact.get_by_id(c.id)


def send_of(campaign, c):
    return Send.get((Send.campaign == campaign) & (Send.contact == c))


# --- Bounces --------------------------------------------------------------------------------------------

def test_hard_bounce_matched_by_token_bounces_and_suppresses_once(sent):
    team, campaign, contacts, _, raw = sent
    alice = contacts[0]
    report = parse_message(dsn(alice.email, "5.1.1", "550 5.1.1 <x>: Recipient address rejected: User unknown",
                               raw[alice.email]))
    assert report.loft_token and report.hard
    first = outcomes.apply(team.id, report, "imap")
    assert [(r["send_id"], r["kind"], r["duplicate"]) for r in first] == [(send_of(campaign, alice).id, "hard", False)]
    assert contact(alice).status == "bounced"
    assert suppression.is_suppressed(team.id, alice.email)
    assert Suppression.get(Suppression.team == team).reason == "bounced"
    assert send_of(campaign, alice).status == "bounced"
    [bounce] = events(alice, "bounced")
    assert (bounce["kind"], bounce["status"], bounce["reason"], bounce["source"], bounce["hard"]) == \
        ("hard", "5.1.1", "userunknown", "imap", True)
    assert [e["to"] for e in events(alice, "status_changed")] == ["bounced"]
    # The same report again (the mailbox is read twice, or a provider repeats its webhook): nothing new.
    again = outcomes.apply(team.id, parse_message(dsn(alice.email, "5.1.1", "550 5.1.1 user unknown",
                                                      raw[alice.email])), "imap")
    assert again[0]["duplicate"] is True
    assert len(events(alice, "bounced")) == 1 and len(events(alice, "status_changed")) == 1
    assert all(contact(c).status == "active" for c in contacts[1:])


def test_matched_by_message_id_when_the_token_is_stripped(sent):
    team, campaign, contacts, _, raw = sent
    bob = contacts[1]
    returned = b"\r\n".join(line for line in raw[bob.email].split(b"\r\n") if not line.startswith(b"X-Loft-Token"))
    report = parse_message(dsn(bob.email, "5.1.1", "550 5.1.1 unknown user", returned))
    assert not report.loft_token and report.original_message_id.startswith("<loft.")
    [applied] = outcomes.apply(team.id, report, "imap")
    assert applied["send_id"] == send_of(campaign, bob).id and contact(bob).status == "bounced"


def test_matched_by_address_among_recent_sends_when_nothing_was_returned(sent):
    team, campaign, contacts, _, _ = sent
    carol = contacts[2]
    bare = (b"From: MAILER-DAEMON@relay.example.net\r\nTo: news@acme.test\r\nSubject: failure notice\r\n\r\n"
            b"Hi. This is the qmail-send program at relay.example.net.\r\n"
            b"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
            b"This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
            + f"<{carol.email}>:\r\nRemote host said: 550 5.1.1 <{carol.email}>... User unknown\r\n".encode())
    [applied] = outcomes.apply(team.id, parse_message(bare), "imap")
    assert applied["send_id"] == send_of(campaign, carol).id and contact(carol).status == "bounced"
    # An address the team did not mail in the last 30 days is left alone.
    Send.update(sent_at=utcnow() - datetime.timedelta(days=45)).where(Send.campaign == campaign).execute()
    dave = contacts[3]
    late = bare.replace(carol.email.encode(), dave.email.encode())
    assert outcomes.apply(team.id, parse_message(late), "imap") == []
    assert contact(dave).status == "active"


def test_soft_bounces_suppress_after_the_limit_within_the_window(sent, ctx):
    team, campaign, contacts, _, raw = sent
    ctx.config.update(SOFT_BOUNCE_LIMIT=2, SOFT_BOUNCE_DAYS=30)
    erin = contacts[0]
    full = parse_message(dsn(erin.email, "5.2.2", "552 5.2.2 Mailbox full", raw[erin.email]))
    [first] = outcomes.apply(team.id, full, "imap")
    assert first["kind"] == "soft" and first["actions"] == ["event:bounced"]
    assert contact(erin).status == "active" and not suppression.is_suppressed(team.id, erin.email)
    # A second campaign to the same people, and a second full mailbox: the limit is reached.
    second = Campaign.create(team=team, name="Summer news", state="completed", from_email="news@acme.test")
    other = Send.create(campaign=second, contact=erin, email=erin.email, status="sent", sent_at=utcnow(),
                        message_id="<other@acme.test>")
    report = parse_message(dsn(erin.email, "4.2.2", "452 4.2.2 Over quota",
                               b"Message-ID: <other@acme.test>\r\nTo: " + erin.email.encode() + b"\r\n\r\nx"))
    [applied] = outcomes.apply(team.id, report, "imap")
    assert applied["send_id"] == other.id and "contact:bounced" in applied["actions"]
    assert contact(erin).status == "bounced" and suppression.is_suppressed(team.id, erin.email)
    [change] = events(erin, "status_changed")
    assert change["reason"] == "soft_bounces"


def test_old_soft_bounces_do_not_count(sent, ctx):
    team, campaign, contacts, _, raw = sent
    ctx.config.update(SOFT_BOUNCE_LIMIT=2, SOFT_BOUNCE_DAYS=7)
    frank = contacts[1]
    old = Event.create(team=team, contact=frank, campaign_id=campaign.id, type="bounced",
                       at=utcnow() - datetime.timedelta(days=10), data={"send": 999999, "kind": "soft"})
    assert old.id
    outcomes.apply(team.id, parse_message(dsn(frank.email, "5.2.2", "552 mailbox full", raw[frank.email])), "imap")
    assert contact(frank).status == "active"


def test_policy_block_records_without_blaming_the_contact(sent):
    team, campaign, contacts, _, raw = sent
    gina = contacts[2]
    report = parse_message(dsn(gina.email, "5.7.1", "554 5.7.1 Service unavailable; Client host [192.0.2.9] "
                                                    "blocked using zen.spamhaus.org", raw[gina.email]))
    [applied] = outcomes.apply(team.id, report, "imap")
    assert applied["kind"] == "block"
    assert contact(gina).status == "active" and not suppression.is_suppressed(team.id, gina.email)
    assert send_of(campaign, gina).status == "bounced"
    assert events(gina, "bounced")[0]["reason"] == "blocked"


def test_delay_notice_changes_nothing(sent):
    team, campaign, contacts, _, raw = sent
    hank = contacts[3]
    report = parse_message(dsn(hank.email, "4.4.7", "421 4.4.7 connection timed out", raw[hank.email],
                               action="delayed"))
    [applied] = outcomes.apply(team.id, report, "imap")
    assert applied["kind"] == "delayed" and applied["actions"] == ["event:deferred"]
    assert send_of(campaign, hank).status == "sent" and contact(hank).status == "active"
    assert not events(hank, "bounced")


def test_our_authentication_failure_pauses_the_campaign_with_the_reason(sent):
    team, campaign, contacts, _, raw = sent
    Campaign.update(state="sending").where(Campaign.id == campaign.id).execute()
    ivy = contacts[0]
    report = parse_message(dsn(ivy.email, "5.7.26", "550-5.7.26 Unauthenticated email from acme.test is not "
                                                    "accepted due to domain's DMARC policy", raw[ivy.email]))
    [applied] = outcomes.apply(team.id, report, "imap")
    assert applied["kind"] == "auth" and "campaign:paused" in applied["actions"]
    assert any(a.startswith("alert") for a in applied["actions"])
    paused = Campaign.get_by_id(campaign.id)
    assert paused.state == "paused" and "DMARC" in paused.state_reason and "authentication" in paused.state_reason
    assert contact(ivy).status == "active" and not suppression.is_suppressed(team.id, ivy.email)
    # A second failure finds it paused already: no second pause, no second alert.
    jack = contacts[1]
    [second] = outcomes.apply(team.id, parse_message(dsn(jack.email, "5.7.26", "550 5.7.26 DMARC fail",
                                                         raw[jack.email])), "imap")
    assert "campaign:paused" not in second["actions"] and not any(a.startswith("alert") for a in second["actions"])


def test_account_limit_pauses_the_account_not_the_contact(sent):
    team, campaign, contacts, account, raw = sent
    kim = contacts[2]
    report = parse_message(dsn(kim.email, "5.4.5", "550 5.4.5 Daily SMTP relay limit exceeded for user",
                               raw[kim.email]))
    [applied] = outcomes.apply(team.id, report, "imap")
    assert applied["kind"] == "limit"
    paused = SmtpAccount.get_by_id(account.id)
    assert paused.status == "paused" and "relay limit" in paused.paused_reason and paused.paused_until
    assert send_of(campaign, kim).status == "failed"  # "send failed messages again" retries it
    assert contact(kim).status == "active"


# --- Complaints --------------------------------------------------------------------------------------------

def test_complaint_marks_the_contact_and_stops_every_list(sent):
    team, campaign, contacts, _, raw = sent
    lea = contacts[3]
    second_list = MailingList.create(team=team, name="Offers")
    Subscription.create(contact=lea, list=second_list, status="subscribed")
    report = parse_message(arf(lea.email, raw[lea.email]))
    assert report.is_complaint and report.loft_token
    [applied] = outcomes.apply(team.id, report, "imap")
    assert applied["kind"] == "complaint"
    assert contact(lea).status == "complained"
    assert {s.status for s in Subscription.select().where(Subscription.contact == lea)} == {"unsubscribed"}
    assert Suppression.get(Suppression.team == team).reason == "complained"
    [complaint] = events(lea, "complained")
    assert complaint["feedback_type"] == "abuse" and complaint["source"] == "imap"
    assert send_of(campaign, lea).status == "sent"  # it was delivered; the person complained
    assert outcomes.apply(team.id, report, "imap")[0]["duplicate"] is True
    assert len(events(lea, "complained")) == 1


def test_complaint_after_an_unsubscribe_cannot_be_lifted_from_the_preference_page(sent):
    team, campaign, contacts, _, raw = sent
    mia = contacts[0]
    suppression.suppress(team.id, "email", mia.email, "unsubscribed")
    outcomes.apply(team.id, parse_message(arf(mia.email, raw[mia.email])), "imap")
    assert Suppression.get(Suppression.team == team).reason == "complained"


def test_opt_out_feedback_unsubscribes_instead(sent):
    team, campaign, contacts, _, raw = sent
    ned = contacts[1]
    [applied] = outcomes.apply(team.id, parse_message(arf(ned.email, raw[ned.email], "opt-out")), "imap")
    assert contact(ned).status == "unsubscribed" and "contact:unsubscribed" in applied["actions"]
    assert Suppression.get(Suppression.team == team).reason == "unsubscribed"


def test_dmarc_failure_report_about_our_send_pauses_but_never_by_address(sent):
    team, campaign, contacts, _, raw = sent
    Campaign.update(state="sending").where(Campaign.id == campaign.id).execute()
    olga = contacts[2]
    stripped = b"\r\n".join(line for line in raw[olga.email].split(b"\r\n")
                            if not line.startswith((b"X-Loft-Token", b"Message-ID")))
    forged = parse_message(arf(olga.email, stripped, "auth-failure"))
    assert forged.kind == "auth"
    assert outcomes.apply(team.id, forged, "imap") == []  # could be mail someone forged in our name
    assert Campaign.get_by_id(campaign.id).state == "sending"
    ours = parse_message(arf(olga.email, raw[olga.email], "auth-failure"))
    [applied] = outcomes.apply(team.id, ours, "imap")
    assert "campaign:paused" in applied["actions"] and Campaign.get_by_id(campaign.id).state == "paused"
    assert contact(olga).status == "active" and send_of(campaign, olga).status == "sent"


# --- Team isolation --------------------------------------------------------------------------------------

def test_a_report_in_one_teams_mailbox_never_touches_another_team(sent):
    team, campaign, contacts, _, raw = sent
    other = make_team("Globex")
    # The same address is a contact of the other team too, and that team mailed it recently.
    twin = Contact.create(team=other, email=contacts[0].email, domain="example.com")
    other_campaign = Campaign.create(team=other, name="Globex news", state="completed", from_email="a@globex.test")
    Send.create(campaign=other_campaign, contact=twin, email=twin.email, status="sent", sent_at=utcnow())
    hard = parse_message(dsn(contacts[0].email, "5.1.1", "550 5.1.1 user unknown", raw[contacts[0].email]))
    complaint = parse_message(arf(contacts[0].email, raw[contacts[0].email]))
    # Acme's genuine token and Message-ID, but the report reached Globex's mailbox: nothing matches there
    # by token or Message-ID, and by address only Globex's own send would.
    [applied] = outcomes.apply(other.id, hard, "imap")
    assert applied["send_id"] != send_of(campaign, contacts[0]).id
    assert contact(contacts[0]).status == "active" and not suppression.is_suppressed(team.id, contacts[0].email)
    outcomes.apply(other.id, complaint, "imap")
    assert contact(contacts[0]).status == "active"
    assert not Event.select().where((Event.team == team) & (Event.type.in_(("bounced", "complained")))).exists()
    # With no send of its own, the other team matches nothing at all.
    Send.delete().where(Send.campaign == other_campaign).execute()
    assert outcomes.apply(other.id, hard, "imap") == []


def test_forged_token_is_ignored(sent):
    team, campaign, contacts, _, raw = sent
    forged = raw[contacts[0].email].replace(b"X-Loft-Token: ", b"X-Loft-Token: AAAA")
    report = parse_message(dsn("someone@elsewhere.example", "5.1.1", "550 user unknown", forged))
    report.original_message_id = ""
    assert outcomes.apply(team.id, report, "imap") == []


# --- Replies during sending ------------------------------------------------------------------------------

def test_smtp_reply_classification_during_sending(sent):
    team, campaign, contacts, _, _ = sent
    Campaign.update(state="sending").where(Campaign.id == campaign.id).execute()
    spam = outcomes.apply_smtp_reply(send_of(campaign, contacts[0]), 554, "5.7.1 Message rejected as spam")
    assert spam["kind"] == "block" and contact(contacts[0]).status == "active"
    dead = outcomes.apply_smtp_reply(send_of(campaign, contacts[1]).id, 550, "5.1.1 <x>: User unknown")
    assert dead["kind"] == "hard" and contact(contacts[1]).status == "bounced"
    assert suppression.is_suppressed(team.id, contacts[1].email)
    event = events(contacts[1], "bounced")[0]
    assert (event["code"], event["source"], event["hard"]) == (550, "smtp", True)
    auth = outcomes.apply_smtp_reply(send_of(campaign, contacts[2]), 550, "5.7.26 DMARC policy reject")
    assert auth["kind"] == "auth" and Campaign.get_by_id(campaign.id).state == "paused"
    assert states.can_transition("paused", "sending")


@pytest.mark.parametrize("code,text,hard", [
    (550, "5.1.1 <a@b>: Recipient address rejected: User unknown in virtual mailbox table", True),
    (550, "No such user here", True),
    (553, "5.1.2 Domain does not exist", True),
    (552, "5.2.2 Mailbox full", False),
    (554, "5.7.1 Spam detected", False),
])
def test_a_refusal_during_sending_blames_the_contact_only_when_the_address_is_bad(sent, code, text, hard):
    """The engine hands every permanent (5xx) refusal to apply_smtp_reply; a 4xx reply is retried instead
    (test_engine's greylisting tests). Only a dead mailbox or domain bounces and suppresses the contact."""
    team, campaign, contacts, _, _ = sent
    reader = contacts[0]
    applied = outcomes.apply_smtp_reply(send_of(campaign, reader), code, text)
    assert (applied["kind"] == "hard") is hard
    assert (contact(reader).status == "bounced") is hard
    assert suppression.is_suppressed(team.id, reader.email) is hard
    assert send_of(campaign, reader).status == "bounced"


def test_engine_routes_refusals_through_classification(ctx):
    """A real send: the server refuses one recipient for our DMARC failure and one for a full mailbox."""
    server = TestSmtp(reject=("reader0@", "reader1@"))
    replies = {"reader0@example.com": "550 5.7.26 Unauthenticated email from acme.test is not accepted due to "
                                      "domain's DMARC policy",
               "reader1@example.com": "552 5.2.2 Mailbox full"}
    original = server.handler.handle_RCPT

    async def handle_rcpt(srv, session, envelope, address, rcpt_options):
        if address in replies:
            return replies[address]
        return await original(srv, session, envelope, address, rcpt_options)

    server.handler.handle_RCPT = handle_rcpt
    try:
        team = make_team()
        campaign, contacts, _ = launched(team, 3, server.port, connections=1)
        sending_tasks.run_campaign(campaign.id)
    finally:
        server.stop()
    paused = Campaign.get_by_id(campaign.id)
    assert paused.state == "paused" and "DMARC" in paused.state_reason
    auth, full = events(contacts[0], "bounced"), events(contacts[1], "bounced")
    assert [(e["kind"], e["code"], e["source"]) for e in auth] == [("auth", 550, "smtp")]
    assert [e["kind"] for e in full] == ["soft"]
    assert contact(contacts[0]).status == "active" and contact(contacts[1]).status == "active"
    assert not suppression.is_suppressed(team.id, contacts[0].email)


def test_unsubscribe_by_mail_through_the_list_unsubscribe_mailto(sent):
    """A person (or Apple Mail for them) writes to the mailto: of List-Unsubscribe with its subject."""
    import re
    from urllib.parse import unquote
    team, campaign, contacts, _, raw = sent
    pia = contacts[2]
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", raw[pia.email])
    mailto = re.search(rb"<mailto:([^?>]+)\?subject=([^>]+)>", unfolded)
    assert mailto, "the message offers a mailto: unsubscribe"
    request = (f"From: {pia.email}\r\nTo: {mailto.group(1).decode()}\r\n"
               f"Subject: {unquote(mailto.group(2).decode())}\r\nMessage-ID: <req.1@example.com>\r\n\r\n"
               "Please unsubscribe me.\r\n").encode()
    report = parse_message(request)
    assert (report.is_complaint, report.feedback_type) == (True, "opt-out") and report.unsubscribe_token
    [applied] = outcomes.apply(team.id, report, "imap")
    assert applied["send_id"] == send_of(campaign, pia).id
    assert contact(pia).status == "unsubscribed"
    assert {s.status for s in Subscription.select().where(Subscription.contact == pia)} == {"unsubscribed"}
    # Someone else mailing the same subject from another team's mailbox matches nothing.
    assert outcomes.apply(make_team("Globex").id, report, "imap") == []


def test_an_unsubscribe_mail_without_a_genuine_token_matches_nobody(sent):
    team, campaign, contacts, _, _ = sent
    forged = (f"From: {contacts[0].email}\r\nTo: news@acme.test\r\nSubject: unsubscribe AAAAAAAAAAAAAAAAAAAAAAAAAA\r\n"
              "\r\nbye\r\n").encode()
    report = parse_message(forged)
    assert report.is_complaint and report.format == "mailto"
    assert outcomes.apply(team.id, report, "imap") == []
    assert contact(contacts[0]).status == "active"
