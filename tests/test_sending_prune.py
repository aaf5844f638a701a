"""What dead engine runs leave behind is removed by the minute task, and nothing a live run needs.

A run that ends removes its SendRun row (and with it its permits); a killed worker's run stays until
another run joins the same campaign. shares.prune (called by tasks.sending.tick) removes the rows of
runs whose heartbeat is older than the lease, and their permits, of every campaign."""
import datetime
import threading
import time

import pytest

from app.models import Campaign
from app.models import SendPermit
from app.models import SendRun
from app.models import utcnow
from app.sending import lease
from app.sending import shares
from tasks.sending import tick
from tests.sending_support import FAST_SENDING
from tests.sending_support import launched
from tests.sending_support import make_team
from tests.sending_support import run
from tests.sending_support import statuses

LEASE = FAST_SENDING["SEND_LEASE_SECONDS"]


@pytest.fixture
def ctx(ctx):
    """conftest's ctx with fast sending timings."""
    ctx.config.update(FAST_SENDING)
    return ctx


def beat(run_id, seconds_ago):
    SendRun.update(heartbeat_at=utcnow() - datetime.timedelta(seconds=seconds_ago)).where(
        SendRun.id == run_id).execute()


def run_ids():
    return {row.id for row in SendRun.select(SendRun.id)}


def permit_runs():
    return sorted(row.run_id for row in SendPermit.select(SendPermit.run))


def test_dead_runs_and_their_permits_go_live_ones_stay(ctx):
    team = make_team()
    campaign, _, account = launched(team, 3, 9, per_hour=100)
    other, _, other_account = launched(make_team("Other"), 3, 9, per_day=100)
    dead = lease.join_run(campaign.id, "killed-worker", 3, LEASE)
    alive = lease.join_run(campaign.id, "alive", 3, LEASE)
    just_in_time = lease.join_run(campaign.id, "slow-but-alive", 3, LEASE)
    dead_elsewhere = lease.join_run(other.id, "killed-elsewhere", 3, LEASE)
    assert shares.take_permits(dead, account.id, 7, LEASE) == 7
    assert shares.take_permits(alive, account.id, 5, LEASE) == 5
    assert shares.take_permits(dead_elsewhere, other_account.id, 4, LEASE) == 4
    shares.use_permits(alive, {account.id: 5})  # used up: the row stays while its run lives
    beat(dead, LEASE + 1)
    beat(dead_elsewhere, 3600 * 30)  # a day and more ago
    beat(just_in_time, LEASE - 2)

    assert shares.prune(LEASE) == (2, 2)

    assert run_ids() == {alive, just_in_time}
    assert permit_runs() == [alive]
    assert SendPermit.get(SendPermit.run == alive).held == 0
    assert shares.prune(LEASE) == (0, 0)  # nothing more to do
    # What the caps count is unchanged by the pruning: the dead runs' permits had stopped counting.
    assert shares.take_permits(alive, account.id, 200, LEASE) == 100


def test_the_minute_task_prunes_with_the_configured_lease(ctx):
    ctx.config.update(SEND_LEASE_SECONDS=40)
    team = make_team()
    campaign, _, account = launched(team, 3, 9, per_hour=100)
    Campaign.update(state="completed").where(Campaign.id == campaign.id).execute()  # nothing for tick to send
    old, recent = lease.join_run(campaign.id, "old", 2, 40), lease.join_run(campaign.id, "recent", 2, 40)
    assert shares.take_permits(old, account.id, 3, 40) == 3
    beat(old, 41)
    beat(recent, 30)  # past the default 15 s lease, inside the configured 40 s

    tick.call_local()

    assert run_ids() == {recent}
    assert permit_runs() == []


def test_a_run_in_progress_keeps_its_row_and_permits_and_sends_everyone(ctx, smtp):
    server = smtp(delay=0.02)
    team = make_team()
    campaign, contacts, account = launched(team, 40, server.port, connections=1, per_hour=1000)
    abandoned, _, _ = launched(make_team("Other"), 2, 9)  # a killed worker's campaign nobody sends again
    killed = lease.join_run(abandoned.id, "killed-worker", 2, LEASE)
    beat(killed, LEASE + 1)
    results = []

    def send():
        with ctx.app_context():
            results.append(run(campaign.id))
    thread = threading.Thread(target=send)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not (server.handler.total() and SendPermit.select().where(SendPermit.run != killed).exists()):
            assert time.monotonic() < deadline, "the run never started sending"
            time.sleep(0.01)
        live = run_ids() - {killed}
        pruned = []
        while thread.is_alive() and server.handler.total() < 30:
            pruned.append(shares.prune(LEASE))
            rows, permits = run_ids(), set(permit_runs())
            if server.handler.total() < 40:  # read after the rows: the run had not ended when they were read
                assert live <= rows, "a live run's row was removed"
                assert permits == live, "a live run's permits were removed"
            time.sleep(0.02)
    finally:
        thread.join(60)

    assert pruned and pruned[0][0] == 1 and all(runs == 0 for runs, _ in pruned[1:])
    assert killed not in run_ids()
    assert results[0].outcome == "completed"
    assert statuses(campaign) == {"sent": 40} and server.handler.total() == 40
    assert not SendRun.select().exists() and not SendPermit.select().exists()  # the run removed its own
