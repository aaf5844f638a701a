"""An SMTP account's hourly and daily caps hold exactly across every run that sends through it.

A run sends through a capped account only with a permit in hand, taken in blocks from the database
(app/sending/shares.py): sent in the rolling window plus every live run's unused permits, against the
caps. Real engine runs into a real aiosmtpd server on loopback; a dead run is what a killed worker
leaves behind (its SendRun row and permits, a heartbeat nobody renews)."""
import datetime
import threading
import time

import psycopg
import pytest

from app.db import db
from app.db import locked
from app.models import Send
from app.models import SendPermit
from app.models import SendRun
from app.models import SmtpAccount
from app.models import utcnow
from app.sending import lease
from app.sending import shares
from app.sending.lanes import Lane
from tests.sending_support import FAST_SENDING
from tests.sending_support import launched
from tests.sending_support import make_account
from tests.sending_support import make_campaign
from tests.sending_support import make_team
from tests.sending_support import run
from tests.sending_support import statuses
from tests.sending_support import two_campaigns_sent_at_once
from tests.stack_support import postgres_only

CAPPED = "every SMTP account reached its hourly or daily limit"
LEASE = FAST_SENDING["SEND_LEASE_SECONDS"]


@pytest.fixture
def ctx(ctx):
    """conftest's ctx with fast sending timings."""
    ctx.config.update(FAST_SENDING)
    return ctx


def sent_through(account):
    return Send.select().where((Send.smtp_account == account) & (Send.status == "sent")).count()


def earlier_sends(team, account, contacts, ago):
    """Messages another campaign sent through the account `ago` before now (the ledger's rolling window)."""
    earlier = make_campaign(team, state="completed", name="Earlier")
    for contact in contacts:
        Send.create(campaign=earlier, contact=contact, email=contact.email, status="sent",
                    smtp_account=account, sent_at=utcnow() - ago)


# --- Permit arithmetic, at the boundaries ----------------------------------------------------------

def test_room_left_under_the_caps():
    assert shares.room(per_hour=0, per_day=0, hour=500, day=500) is None  # no cap: no permits needed
    assert shares.room(per_hour=1, per_day=0, hour=0, day=0) == 1
    assert shares.room(per_hour=1, per_day=0, hour=1, day=1) == 0
    assert shares.room(per_hour=10, per_day=12, hour=3, day=11) == 1  # the day is the tighter one
    assert shares.room(per_hour=5, per_day=0, hour=7, day=7) == 0  # over already (the cap was lowered)


def test_cap_of_one_is_granted_once_across_runs(ctx):
    team = make_team()
    campaign, _, account = launched(team, 3, 9, per_hour=1)
    first, second = lease.join_run(campaign.id, "first", 2, LEASE), lease.join_run(campaign.id, "second", 2, LEASE)
    assert shares.take_permits(first, account.id, 20, LEASE) == 1
    assert shares.take_permits(second, account.id, 20, LEASE) == 0
    assert shares.take_permits(first, account.id, 20, LEASE) == 0  # its own unused permit counts too


def test_cap_equal_to_the_block_goes_to_the_first_run_and_stays_taken_once_used(ctx):
    team = make_team()
    campaign, contacts, account = launched(team, 20, 9, per_day=20)
    first, second = lease.join_run(campaign.id, "first", 2, LEASE), lease.join_run(campaign.id, "second", 2, LEASE)
    assert shares.take_permits(first, account.id, 20, LEASE) == 20
    assert shares.take_permits(second, account.id, 20, LEASE) == 0

    # The first run's 20 messages are recorded sent, using its permits in the same transaction:
    # from then on they count in the ledger instead, so the cap stays reached.
    earlier_sends(team, account, contacts, datetime.timedelta(minutes=1))
    shares.use_permits(first, {account.id: 20})
    assert SendPermit.get((SendPermit.run == first) & (SendPermit.account == account)).held == 0
    assert shares.counted(account.id, LEASE, utcnow()) == (20, 20, 0)
    assert shares.take_permits(second, account.id, 20, LEASE) == 0


def test_cap_exhausted_by_the_ledger_alone_grants_nothing(ctx):
    team = make_team()
    campaign, contacts, account = launched(team, 5, 9, per_hour=5, per_day=8)
    run_id = lease.join_run(campaign.id, "run", 1, LEASE)
    earlier_sends(team, account, contacts, datetime.timedelta(minutes=30))
    assert shares.take_permits(run_id, account.id, 20, LEASE) == 0  # the hour is full

    Send.update(sent_at=utcnow() - datetime.timedelta(hours=2)).where(Send.smtp_account == account).execute()
    assert shares.take_permits(run_id, account.id, 20, LEASE) == 3  # out of the hour, still in the day: 8 - 5


def test_a_dead_runs_permits_stop_counting_after_the_lease_and_go_with_its_row(ctx):
    team = make_team()
    campaign, _, account = launched(team, 3, 9, per_hour=10)
    dead, alive = lease.join_run(campaign.id, "dead", 2, LEASE), lease.join_run(campaign.id, "alive", 2, LEASE)
    assert shares.take_permits(dead, account.id, 7, LEASE) == 7
    assert shares.take_permits(alive, account.id, 7, LEASE) == 3

    SendRun.update(heartbeat_at=utcnow() - datetime.timedelta(seconds=LEASE + 5)).where(SendRun.id == dead).execute()
    assert shares.take_permits(alive, account.id, 7, LEASE) == 7  # 10 - its own 3
    lease.leave_run("alive")
    assert not SendPermit.select().where(SendPermit.run == alive).exists()


@postgres_only("the account row lock; on SQLite takes are serial anyway: each holds the write lock from BEGIN")
def test_a_take_waits_for_another_take_of_the_same_account_and_counts_what_it_granted(ctx):
    team = make_team()
    campaign, _, account = launched(team, 3, 9, per_hour=10)
    first, second = lease.join_run(campaign.id, "first", 2, LEASE), lease.join_run(campaign.id, "second", 2, LEASE)
    granted = []

    def take():
        with ctx.app_context():
            granted.append(shares.take_permits(second, account.id, 20, LEASE))
            db.close()
    watcher = psycopg.connect(ctx.config["DATABASE_URL"], autocommit=True)
    thread = threading.Thread(target=take)
    try:
        with db.atomic():  # the first run's take, caught halfway: the account row is locked
            list(locked(SmtpAccount.select(SmtpAccount.id).where(SmtpAccount.id == account.id)))
            thread.start()
            deadline = time.monotonic() + 30
            while not watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                      "AND datname = current_database()").fetchone()[0]:
                assert time.monotonic() < deadline, "the second take never waited for the first"
                time.sleep(0.01)
            SendPermit.insert(run=first, account=account.id, held=10).execute()
    finally:
        thread.join(30)
        watcher.close()
    assert granted == [0]  # it counted the first run's ten, committed while it waited


def test_a_lane_spends_a_permit_per_message_and_gets_it_back_when_not_sent():
    capped = SmtpAccount(id=1, max_connections=2, per_second=0, per_hour=3, per_day=0,
                         connection_state="ok", last_error="")
    lane = Lane(capped, {})
    assert lane.needs_permit() and lane.wants_permits(20) and not lane.capped()
    assert lane.usage()["hour"] == 3  # no permit: full, for the rotation
    lane.permits = 2
    lane.take()
    assert lane.permits == 1 and lane.usage()["hour"] == 0
    lane.not_sent()
    assert lane.permits == 2
    lane.take(), lane.take()
    lane.permits_out = True
    assert lane.capped()

    unlimited = Lane(SmtpAccount(id=2, max_connections=2, per_second=0, per_hour=0, per_day=0,
                                 connection_state="ok", last_error=""), {})
    unlimited.take()
    assert not unlimited.needs_permit() and not unlimited.wants_permits(20) and unlimited.permits == 0


# --- Real runs -------------------------------------------------------------------------------------

def test_two_runs_sending_at_once_through_one_capped_account_send_exactly_the_cap(ctx, smtp):
    ctx.config.update(SEND_PERMIT_BLOCK=5)
    cap = 13  # not a multiple of the block
    server = smtp(delay=0.005)
    team = make_team()
    account = make_account(team, server.port, max_connections=2, per_second=4, per_hour=cap)
    campaigns, results = two_campaigns_sent_at_once(ctx, team)

    assert server.handler.total() == cap
    assert sent_through(account) == cap
    counts = [statuses(c) for c in campaigns]
    assert sum(c.get("sent", 0) for c in counts) == cap and sum(c.get("queued", 0) for c in counts) == 24 - cap
    assert all(c.get("sent", 0) for c in counts), f"both runs sent through the account: {counts}"
    for result in results.values():
        assert (result.outcome, result.again, result.reason) == ("waiting", True, CAPPED)
    assert not SendPermit.select().exists()  # each run's permits went with its row


def test_a_killed_runs_permits_hold_back_the_others_until_its_lease_runs_out(ctx, smtp):
    ctx.config.update(SEND_RUNS_PER_CAMPAIGN=2)
    server = smtp()
    team = make_team()
    campaign, _, account = launched(team, 10, server.port, per_hour=7)
    killed = lease.join_run(campaign.id, "killed-worker", 2, LEASE)  # it took 5 permits, then died
    assert shares.take_permits(killed, account.id, 5, LEASE) == 5

    result = run(campaign.id)
    assert (result.outcome, result.reason) == ("waiting", CAPPED)
    assert server.handler.total() == 2 and statuses(campaign) == {"sent": 2, "queued": 8}

    SendRun.update(heartbeat_at=utcnow() - datetime.timedelta(seconds=LEASE + 1)).where(SendRun.id == killed).execute()
    result = run(campaign.id)
    assert (result.outcome, result.reason) == ("waiting", CAPPED)
    assert server.handler.total() == 7 and statuses(campaign) == {"sent": 7, "queued": 3}
    assert not SendPermit.select().exists()  # the next run removed the dead row, and its permits with it


def test_an_account_without_caps_never_touches_permits(ctx, smtp, sql_statements):
    server = smtp()
    team = make_team()
    campaign, contacts, _ = launched(team, 30, server.port)

    assert run(campaign.id).outcome == "completed"
    assert server.handler.total() == 30
    assert not [sql for sql in sql_statements if "send_permit" in sql]
