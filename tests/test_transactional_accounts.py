"""The transactional stream and its SMTP accounts, against real SMTP servers on loopback: connections kept
open between messages, the account's hourly and daily caps (shared with campaigns) and pauses make a message
wait rather than fail, and campaigns leave the account marked for transactional mail alone."""
import datetime

import pytest

from app.models import Campaign
from app.models import Contact
from app.models import MailingList
from app.models import Send
from app.models import SenderDomain
from app.models import SmtpAccount
from app.models import TxMessage
from app.models import utcnow
from app.senders import accounts
from app.senders import domains
from app.sending import ledger
from app.sending import shares
from app.transactional import outbound
from app.transactional import service
from tasks import transactional as tx_tasks
from tests.sending_support import TestSmtp
from tests.sending_support import launched
from tests.sending_support import make_account
from tests.sending_support import make_campaign
from tests.sending_support import make_contacts
from tests.sending_support import make_team
from tests.sending_support import run
from tests.sending_support import statuses


@pytest.fixture
def team(ctx):
    team = make_team()
    row = domains.add_domain(team, "acme.test")
    SenderDomain.update(verified_at=utcnow()).where(SenderDomain.id == row.id).execute()
    yield team
    outbound.close_all()


def send(team, to="buyer@example.com"):
    tx = service.accept(team, api_key=None, message={"to": to, "subject": "Your receipt", "html": "<p>Thanks</p>"})
    tx_tasks.queue([tx])
    return TxMessage.get_by_id(tx.id)


def history(tx):
    return [(status, detail) for status, _at, detail in service.status_history(tx)]


def test_messages_share_one_connection_until_it_has_been_idle(team, smtp, ctx):
    server = smtp()
    make_account(team, server.port)
    sent = [send(team, f"buyer{i}@example.com") for i in range(3)]
    assert [tx.status for tx in sent] == ["sent"] * 3 and server.handler.total() == 3
    assert server.handler.sessions == 1

    outbound.close_all()  # as after LOFT_TX_CONNECTION_IDLE seconds without a message
    send(team, "later@example.com")
    assert server.handler.sessions == 2

    ctx.config["TX_CONNECTION_IDLE"] = 0  # one connection per message
    outbound.close_all()
    for i in range(2):
        send(team, f"single{i}@example.com")
    assert server.handler.sessions == 4 and server.handler.total() == 6


def test_a_connection_the_server_dropped_while_idle_is_replaced_without_losing_or_doubling(team, smtp):
    server = TestSmtp()  # not the fixture's: this test stops it itself
    make_account(team, server.port)
    assert send(team, "first@example.com").status == "sent"
    server.stop()
    again = smtp(port=server.port)  # the same server back, without the kept connection
    assert send(team, "second@example.com").status == "sent"
    assert again.handler.delivered == {"second@example.com": 1} and server.handler.delivered == {"first@example.com": 1}


def test_a_refused_recipient_leaves_the_connection_usable_for_the_next(team, smtp):
    server = smtp(reject=("nobody@",))
    make_account(team, server.port)
    refused = send(team, "nobody@example.com")
    assert refused.status == "failed" and "550" in refused.error
    assert send(team, "somebody@example.com").status == "sent"
    assert server.handler.sessions == 1


def test_the_hourly_cap_counts_campaign_sends_and_the_message_waits_with_the_reason(team, smtp):
    server = smtp()
    account = make_account(team, server.port, per_hour=3)
    contact = Contact.create(team=team, email="reader@example.com", domain="example.com")
    earlier = make_campaign(team, state="completed")
    Send.create(campaign=earlier, contact=contact, email=contact.email, status="sent", smtp_account=account,
                sent_at=utcnow() - datetime.timedelta(minutes=30))
    first, second = send(team, "a@example.com"), send(team, "b@example.com")
    assert (first.status, second.status, first.smtp_account_id) == ("sent", "sent", account.id)
    assert shares.counted(account.id, 15, utcnow()) == (3, 3, 0)  # campaigns' caps count transactional mail
    assert accounts.sent_counts([account.id])[account.id] == {"hour": 3, "day": 3}

    waiting = send(team, "c@example.com")
    assert waiting.status == "queued" and waiting.attempts == 0 and server.handler.total() == 2
    assert "hourly or daily limit" in waiting.waiting and "Loopback" in waiting.waiting
    assert history(waiting)[-1] == ("queued", f"waiting: {waiting.waiting}")
    # Looking again at once (a second task for the same message) keeps one task waiting, and one history line.
    assert service.deliver(waiting.id).retry_in is None
    assert len(history(waiting)) == 2
    assert service.stalled_ids(now=utcnow() + datetime.timedelta(minutes=2)) == []  # waiting, not lost

    SmtpAccount.update(per_hour=10).where(SmtpAccount.id == account.id).execute()
    TxMessage.update(waited_at=utcnow() - datetime.timedelta(minutes=5)).where(TxMessage.id == waiting.id).execute()
    assert tx_tasks.send_tx.call_local(waiting.id) == "sent"
    done = TxMessage.get_by_id(waiting.id)
    assert done.waiting == "" and server.handler.delivered["c@example.com"] == 1


def test_a_paused_account_makes_the_message_wait_and_it_goes_out_after_the_resume(team, smtp):
    server = smtp()
    account = make_account(team, server.port)
    accounts.pause_account(account.id, "the provider asked us to slow down",
                           until=utcnow() + datetime.timedelta(hours=1))
    tx = send(team)
    assert tx.status == "queued" and tx.attempts == 0 and server.handler.total() == 0
    assert "“Loopback” is paused until" in tx.waiting and "slow down" in tx.waiting

    accounts.resume_account(account.id)
    TxMessage.update(waited_at=utcnow() - datetime.timedelta(minutes=5)).where(TxMessage.id == tx.id).execute()
    assert service.deliver(tx.id).status == "sent" and server.handler.delivered["buyer@example.com"] == 1


def test_the_daily_cap_of_a_warming_up_account_holds_transactional_mail_too(team, smtp):
    server = smtp()
    make_account(team, server.port, per_day=1000, warmup_started_on=utcnow().date(), warmup_first_day=1)
    assert send(team, "a@example.com").status == "sent"
    assert send(team, "b@example.com").status == "queued" and server.handler.total() == 1


def test_campaigns_leave_the_transactional_account_alone_while_there_is_another(team, smtp):
    bulk_server, receipts_server = smtp(), smtp()
    campaign, _contacts, bulk = launched(team, 12, bulk_server.port)
    receipts = make_account(team, receipts_server.port, name="Receipts", transactional=True)
    assert [account.name for account in accounts.active_accounts(team.id)] == ["Loopback"]
    assert [account.name for account in accounts.transactional_accounts(team.id)] == ["Receipts", "Loopback"]
    assert run(campaign.id).outcome == "completed"
    assert bulk_server.handler.total() == 12 and receipts_server.handler.total() == 0
    assert send(team).status == "sent" and receipts_server.handler.total() == 1

    # A paused main account pauses the campaign; it does not spill onto the receipts' account.
    accounts.pause_account(bulk.id, "too many failures")
    assert accounts.active_accounts(team.id) == []
    later_list = MailingList.create(team=team, name="Later")
    make_contacts(team, 3, later_list, prefix="later")
    later = make_campaign(team, [later_list], name="Later")
    ledger.freeze_audience(later)
    assert run(later.id).outcome == "paused"
    assert "too many failures" in Campaign.get_by_id(later.id).state_reason
    assert receipts_server.handler.total() == 1

    # A team whose only account is marked for transactional mail sends its campaigns through it.
    SmtpAccount.delete().where(SmtpAccount.id == bulk.id).execute()
    assert [account.id for account in accounts.active_accounts(team.id)] == [receipts.id]
    assert statuses(campaign) == {"sent": 12}


@pytest.mark.parametrize("marked,most", [(True, 1), (False, 2)])
def test_a_campaign_on_the_only_account_leaves_one_connection_to_transactional_mail(team, smtp, marked, most):
    server = smtp(delay=0.03, track_domains=True)
    mailing_list = MailingList.create(team=team, name="All")
    make_contacts(team, 12, mailing_list)
    make_account(team, server.port, max_connections=2, transactional=marked)
    campaign = make_campaign(team, [mailing_list])
    ledger.freeze_audience(campaign)
    assert run(campaign.id).outcome == "completed" and server.handler.total() == 12
    assert server.handler.max_active_total == most


def test_deleting_an_account_keeps_the_messages_sent_through_it(team, smtp):
    server = smtp()
    account = make_account(team, server.port)
    tx = send(team)
    assert TxMessage.get_by_id(tx.id).smtp_account_id == account.id
    accounts.delete_account(account)
    kept = TxMessage.get_by_id(tx.id)
    assert kept.status == "sent" and kept.smtp_account_id is None


def test_messages_to_one_account_keep_to_its_per_second_limit(team, smtp):
    server = smtp()
    make_account(team, server.port, per_second=4)
    for i in range(7):
        assert send(team, f"buyer{i}@example.com").status == "sent"
    times = sorted(server.handler.accepted_at)
    most_in_a_second = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert len(times) == 7 and most_in_a_second <= 5  # one each 0.25 s: 4, or 5 with both ends of a window
