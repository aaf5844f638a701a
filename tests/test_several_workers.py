"""Three real huey consumers send one campaign together into a recording SMTP sink on loopback, and one of
them is killed with SIGKILL twice during the send and restarted: every recipient gets the message, only
messages the killed runs had in flight may arrive twice (at most their unrecorded allowance each), the
campaign completes, and the counts on the campaign page match what the sink received. A consumer killed
while it holds permits of an account's hourly cap holds the cap until its lease runs out.

RECIPIENTS is 3,000 in the suite; LOFT_SEVERAL_WORKERS_RECIPIENTS=20000 runs the issue's full size. The
account's per-second limit is set so that the send lasts about a minute whatever the size: long enough
for a killed run's lease (SEND_LEASE_SECONDS) to run out and the restarted consumer to join in again.
On the PostgreSQL stack (LOFT_TEST_DATABASE_URL) the consumers use the test's PostgreSQL database and,
with LOFT_TEST_QUEUE_URL, a Redis queue."""
import datetime
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from app.config import ROOT
from app.db import db
from app.models import Campaign
from app.models import Send
from app.models import SendPermit
from app.models import SendRun
from app.models import SmtpAccount
from app.models import Team
from app.models import utcnow
from app.operations import heartbeat
from app.sending import engine
from app.sending import lease
from app.sending import ledger
from app.sending.lanes import DomainGate
from app.sending.lanes import Lane
from tests.conftest import soup
from tests.sending_support import TestSmtp
from tests.sending_support import launched
from tests.sending_support import make_team
from tests.sending_support import run
from tasks import huey
from tasks import sending as sending_tasks

RECIPIENTS = int(os.environ.get("LOFT_SEVERAL_WORKERS_RECIPIENTS", "3000"))
CONSUMERS = 3
CONNECTIONS = 6  # the account's; each of the three runs keeps two
PER_SECOND = max(20, RECIPIENTS // 60)  # the account's rate, shared by the runs: about a minute of sending
# What one killed run may have delivered without recording it (the engine's gate).
UNRECORDED = max(engine.DEFAULTS["SEND_MAX_UNRECORDED"], 2 * CONNECTIONS)
KILLS = 2
TIMEOUT = max(600, RECIPIENTS // 10)  # seconds: generous; the send itself takes about a minute


@pytest.fixture
def sink():
    server = TestSmtp(delay=0.005)  # a few milliseconds per message, like a real server
    yield server
    server.stop()


class Consumers:
    """The consumer processes, each with one worker thread, so each run is in a process of its own."""

    def __init__(self, env, folder):
        self.env = env
        self.folder = folder
        self.processes = []
        self.started = 0

    def start(self):
        self.started += 1
        log = open(self.folder / f"consumer{self.started}.log", "wb")
        process = subprocess.Popen([str(ROOT / ".venv" / "bin" / "huey_consumer"), "wsgi.huey", "-w", "1", "-m", "1",
                                    "--no-periodic"], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.processes.append(process)
        return process

    def logs(self):
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}"
                         for path in sorted(self.folder.glob("consumer*.log")))

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def wait_for(what, condition, consumers, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout} s waiting for {what}\n{consumers.logs()}")
        time.sleep(0.05)


def runs_of(app, process):
    """Live runs held by this consumer process (the run token starts with its process id)."""
    with app.app_context():
        return SendRun.select().where(SendRun.token.startswith(f"{process.pid}-")).count()


def claimed_emails(app, campaign):
    with app.app_context():
        return {s.email for s in Send.select(Send.email).where((Send.campaign == campaign) & (Send.status == "sending"))}


def test_three_consumers_send_one_campaign_and_a_killed_one_loses_nothing(app, web, admin, sink, queue_env, tmp_path):
    with app.app_context():
        team = Team.get(Team.name == "Acme")
        team.postal_address = "1 Main Street, Springfield"
        team.save()
        campaign, contacts, _ = launched(team, RECIPIENTS, sink.port, connections=CONNECTIONS, per_second=PER_SECOND)
    env = dict(os.environ, LOFT_DATABASE_URL=app.config["DATABASE_URL"], LOFT_SECRET_KEY="test-secret",
               LOFT_LOG_LEVEL="WARNING", LOFT_BASE_URL="http://loft.test", LOFT_DOTENV="0",
               LOFT_MAIL_ALLOW_PRIVATE="true",  # the sink listens on loopback
               LOFT_SENDING_PROCESSES=str(CONSUMERS), **queue_env)
    consumers = Consumers(env, tmp_path)
    started = time.monotonic()
    try:
        victim = consumers.start()
        for _ in range(CONSUMERS - 1):
            consumers.start()
        # One task: the run it starts enqueues another while the campaign has room, so all three join.
        enqueue = f"import wsgi; from tasks.sending import send_campaign; send_campaign({campaign.id})"
        subprocess.run([sys.executable, "-c", enqueue], cwd=ROOT, env=env, check=True, timeout=60)
        wait_for("three runs sending the campaign", lambda: all(runs_of(app, p) for p in consumers.processes),
                 consumers, timeout=120)

        # Claimed by anyone when each kill happened: a superset of what the killed run had in flight then.
        in_flight_at = []
        killed = []
        for kill in range(KILLS):
            before = sink.handler.total()
            wait_for(f"consumer {victim.pid} to send (kill {kill + 1})",
                     lambda: runs_of(app, victim) and sink.handler.total() >= before + RECIPIENTS // 10, consumers)
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(victim.pid)
            victim.wait(timeout=10)
            in_flight_at.append(claimed_emails(app, campaign))
            with app.app_context():
                assert Campaign.get_by_id(campaign.id).state == "sending", "the campaign ended before the kill"
            victim = consumers.start()  # its run's claims return once their lease runs out

        def completed():
            with app.app_context():
                return Campaign.get_by_id(campaign.id).state == "completed"
        wait_for("the campaign to complete", completed, consumers)
        # The run that completed it is not the only one: the others end at their next look and remove their rows
        # then. Stopped before that (SIGTERM stops a consumer at once), a live run would leave its row behind.
        wait_for("the live consumers' runs to end", lambda: not any(
            runs_of(app, p) for p in consumers.processes if p.poll() is None), consumers)
    finally:
        consumers.stop()
    seconds = time.monotonic() - started

    delivered = sink.handler.delivered
    everyone = {c.email for c in contacts}
    skipped = everyone - set(delivered)
    twice = {email for email, count in delivered.items() if count > 1}
    assert not skipped, f"{len(skipped)} recipients never got the message"
    assert set(delivered) == everyone
    # Each kill may repeat only what it interrupted: a message in flight at both kills (sent, not yet recorded, by
    # the first victim; claimed again after its lease ran out, by the second) may arrive three times, no other.
    allowed = {email: 1 + sum(email in claimed for claimed in in_flight_at) for email in delivered}
    assert {email: count for email, count in delivered.items() if count > allowed[email]} == {}, \
        "only messages claimed when a worker was killed may arrive again, once a kill"
    assert len(twice) <= KILLS * UNRECORDED, f"{len(twice)} delivered twice; each kill may repeat {UNRECORDED}"
    with app.app_context():
        assert {s.status for s in Send.select(Send.status).where(Send.campaign == campaign)} == {"sent"}
        assert Campaign.get_by_id(campaign.id).sent == RECIPIENTS == len(delivered)
        # At most the dead runs' rows: a run that joins removes those already stale, and no minute tick runs here.
        left = [run.token for run in SendRun.select(SendRun.token).where(SendRun.campaign == campaign.id)]
        assert {int(token.partition("-")[0]) for token in left} <= set(killed), left

    page = soup(web.get(f"/campaigns/{campaign.id}/progress"))
    shown = {div.select_one("dt").text: div.select_one("dd").text for div in page.select("dl.stats > div")}
    assert shown["Sent"] == f"{len(delivered):,}"
    assert shown["Failed or bounced"] == "0" and shown["Remaining"] == "0"
    assert shown["Recipients"] == f"{RECIPIENTS:,}"
    print(f"\nseveral workers: {RECIPIENTS} recipients, {CONSUMERS} consumers, {KILLS} kill -9 of one: "
          f"{len(twice)} delivered twice (bound {KILLS * UNRECORDED}), 0 skipped, {seconds:.0f} s")


# --- The pieces, in one process ------------------------------------------------------------------

def test_a_campaign_takes_at_most_its_number_of_runs_and_a_dead_runs_place_is_freed(ctx):
    team = make_team()
    campaign, _, _ = launched(team, 3, 9)
    assert lease.join_run(campaign.id, "one", 2, 15) and lease.join_run(campaign.id, "two", 2, 15)
    assert not lease.join_run(campaign.id, "three", 2, 15)
    assert [r.token for r in SendRun.select().order_by(SendRun.id)] == ["one", "two"]  # the refused one left
    assert lease.live_runs(campaign.id, 15) == 2 and lease.runs_of_team(team.id, 15) == 2

    # "one" was killed 20 seconds ago: the next run to join removes its row and takes its place.
    SendRun.update(heartbeat_at=utcnow() - datetime.timedelta(seconds=20)).where(SendRun.token == "one").execute()
    assert not lease.renew_run("gone") and lease.renew_run("two")
    assert lease.join_run(campaign.id, "three", 2, 15)
    assert sorted(r.token for r in SendRun.select()) == ["three", "two"]


def test_claims_expire_unless_extended_and_only_expired_ones_are_queued_again(ctx):
    team = make_team()
    campaign, _, _ = launched(team, 6, 9)
    now = utcnow()
    with db.atomic():
        mine = ledger.claim(campaign.id, 2, now=now, lease_seconds=15)
    with db.atomic():
        theirs = ledger.claim(campaign.id, 2, now=now, lease_seconds=15)
    assert len(set(mine) | set(theirs)) == 4  # two claims never take the same send

    later = now + datetime.timedelta(seconds=20)
    assert ledger.extend_claims(mine, later + datetime.timedelta(seconds=15)) == 2  # "mine" is alive
    assert ledger.recover_in_flight(campaign.id, now=now + datetime.timedelta(seconds=5)) == 0  # nobody expired yet
    assert ledger.recover_in_flight(campaign.id, now=later) == 2  # "theirs" died: back in the queue
    rows = {s.id: s.status for s in Send.select().where(Send.campaign == campaign)}
    assert {rows[i] for i in mine} == {"sending"} and {rows[i] for i in theirs} == {"queued"}
    assert ledger.claims_expire_at(campaign.id) == later + datetime.timedelta(seconds=15)


def test_a_run_keeps_its_share_of_the_accounts_connections_rate_and_domain_limits():
    account = SmtpAccount(id=1, max_connections=5, per_second=30, per_hour=0, per_day=0,
                          connection_state="ok", last_error="")
    lane = Lane(account, {})
    assert (lane.allowed, lane.per_second) == (5, 30)
    lane.share(2)
    assert (lane.allowed, lane.per_second) == (2, 15)
    lane.share(9)  # more runs than connections: each still keeps one
    assert lane.allowed == 1 and lane.per_second == 30 / 9
    gate = DomainGate(10, {"gmail.com": 4}, connections=100)
    gate.runs = 3
    assert (gate.limit("example.com"), gate.limit("gmail.com")) == (3, 1)


def test_a_run_beside_another_live_run_of_the_team_opens_only_its_share_of_connections(ctx):
    ctx.config.update(SEND_RUNS_PER_CAMPAIGN=2)
    server = TestSmtp(delay=0.02, track_domains=True)
    try:
        team = make_team()
        campaign, contacts, _ = launched(team, 60, server.port, connections=4)
        assert lease.join_run(campaign.id, "another-worker", 2, 15)  # alive, sending nothing here

        assert run(campaign.id).outcome == "completed"
    finally:
        server.stop()
    assert server.handler.delivered == {c.email: 1 for c in contacts}
    assert server.handler.max_active_total <= 2  # half of the account's four connections


def test_a_second_run_of_a_campaign_in_the_same_process_leaves_at_once_and_comes_back_for_another_process(ctx):
    ctx.config.update(SEND_RUNS_PER_CAMPAIGN=3, SEND_STATE_INTERVAL=0.1, SEND_FLUSH_INTERVAL=0.05)
    server = TestSmtp(delay=0.005)
    try:
        team = make_team()
        campaign, contacts, _ = launched(team, 40, server.port, connections=2, per_second=20)
        results = []

        def first_run():
            with ctx.app_context():
                results.append(run(campaign.id))
        thread = threading.Thread(target=first_run)
        thread.start()
        deadline = time.monotonic() + 60
        while not SendRun.select().where(SendRun.campaign == campaign.id).exists() and time.monotonic() < deadline:
            time.sleep(0.01)

        # Another worker thread of this process picks the campaign's task while the first run sends.
        second = run(campaign.id)
        assert (second.outcome, second.again, second.here, second.reason) == (
            "busy", True, True, "this worker process is already sending this campaign")
        assert second.delay == 0.1 and second.sent == 0
        assert SendRun.select().where(SendRun.campaign == campaign.id).count() == 1  # it never joined
        assert thread.is_alive(), "the first run was still sending"

        # Through the task. Any task but a join comes back once, scheduled (a task queued by an older Loft passed
        # True: that counts as once).
        def comes_back(*args):
            huey.flush()
            sending_tasks.send_campaign(campaign.id, *args)
            return [task.args for task in huey.scheduled() if task.name == "sending.send_campaign"]
        assert comes_back() == [(campaign.id, 1, False)]
        assert comes_back(1) == comes_back(True) == []
        assert comes_back(0, True) == [] and huey.pending() == []  # a join, in immediate mode: no other process

        thread.join(60)
        # With consumers (the first run over, so nothing else enqueues): a join goes straight back to the queue (not
        # the schedule, which one process keeps) for another process to take, while one is alive and for
        # HANDOFF_SECONDS from the first pass.
        huey.immediate = False
        try:
            huey.flush()
            now = time.time()
            assert not sending_tasks.hand_on(campaign.id, now - 1, now)  # no other consumer has ever beaten
            heartbeat.started("elsewhere.test", 4242, huey.name)
            assert sending_tasks.hand_on(campaign.id, None, now)
            assert sending_tasks.hand_on(campaign.id, now - 1, now)
            assert [task.args for task in huey.pending()] == [(campaign.id, 0, True, now),
                                                               (campaign.id, 0, True, now - 1)]
            assert huey.scheduled() == []
            huey.flush()
            assert not sending_tasks.hand_on(campaign.id, now - sending_tasks.HANDOFF_SECONDS, now)
            assert huey.pending() == []
        finally:
            huey.flush()
            huey.immediate = True
    finally:
        server.stop()
        huey.flush()
    assert [r.outcome for r in results] == ["completed"]
    assert server.handler.delivered == {c.email: 1 for c in contacts}

    with lease.first_in_process(campaign.id) as first:  # the first run's place in this process is free again
        assert first


def test_a_killed_consumers_permits_hold_the_cap_until_its_lease_runs_out(app, sink, queue_env, tmp_path):
    cap, recipients = 25, 600  # more than a consumer claims at once (SEND_BATCH_SIZE), so some stay queued
    app.config.update(SEND_RUNS_PER_CAMPAIGN=2)
    with app.app_context():
        campaign, contacts, account = launched(make_team("Capped"), recipients, sink.port, connections=2,
                                               per_second=5, per_hour=cap)
    env = dict(os.environ, LOFT_DATABASE_URL=app.config["DATABASE_URL"], LOFT_SECRET_KEY="test-secret",
               LOFT_LOG_LEVEL="WARNING", LOFT_BASE_URL="http://loft.test", LOFT_DOTENV="0",
               LOFT_MAIL_ALLOW_PRIVATE="true", LOFT_SENDING_PROCESSES="2", **queue_env)
    consumers = Consumers(env, tmp_path)
    try:
        victim = consumers.start()
        enqueue = f"import wsgi; from tasks.sending import send_campaign; send_campaign({campaign.id})"
        subprocess.run([sys.executable, "-c", enqueue], cwd=ROOT, env=env, check=True, timeout=60)
        wait_for("the consumer to send through the capped account", lambda: sink.handler.total() >= 5, consumers,
                 timeout=120)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        consumers.stop()
    with app.app_context():
        held = SendPermit.select(SendPermit.held).join(SendRun).where(SendRun.campaign == campaign.id).scalar()
        assert held, "the killed run held permits"

        # Its row is still live: its permits (including those of messages it delivered without recording
        # them) still count, so this run sends only what is left under the cap.
        result = run(campaign.id)
        assert (result.outcome, result.reason) == ("waiting", "every SMTP account reached its hourly or daily limit")
        assert sink.handler.total() <= cap

        # Once its lease has run out its permits count for nobody, its claims go back to the queue, and
        # sending resumes up to the cap as the ledger counts it.
        deadline = time.monotonic() + 60
        while SendRun.select().where(lease.alive(15)).exists():
            assert time.monotonic() < deadline, "the killed run's row never went stale"
            time.sleep(0.2)
        result = run(campaign.id)
        assert result.outcome == "waiting"
        sent = Send.select().where((Send.smtp_account == account) & (Send.status == "sent")).count()
        assert sent == cap
        assert not SendPermit.select().exists()
    delivered = sink.handler.delivered
    twice = sum(count - 1 for count in delivered.values())
    # Past the cap: only the killed run's deliveries it never recorded. The ledger cannot count what it never
    # heard of, so each may go past the cap once; the next run sends one of them again only if it claims that
    # recipient before the cap stops it (then it shows as delivered twice).
    unrecorded = sink.handler.total() - cap
    assert twice <= unrecorded <= UNRECORDED, f"{unrecorded} past the cap, {twice} delivered twice"
