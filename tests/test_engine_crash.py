"""kill -9 of a real huey consumer in the middle of a campaign, then a restart: every recipient gets
the message exactly once, except those in flight at the kill (at most twice, and no more of them than
the engine's unrecorded allowance), and nobody is skipped.

The second case kills the worker while another process holds the database's write lock (an import, a
backup, a slow disk): the worker cannot record results, and before issue 9 it kept sending everything it
had claimed (hundreds of messages), all of which went out again after the restart."""
import os
import sqlite3
import signal
import subprocess
import sys
import time

import pytest

from app.config import ROOT
from app.models import Campaign
from app.models import Send
from app.sending import engine
from tests.sending_support import TestSmtp
from tests.sending_support import launched
from tests.sending_support import make_team
from tests.stack_support import sqlite_only

RECIPIENTS = 3000
CONNECTIONS = 10
# What a kill may send twice: deliveries started and not yet written (the engine's gate), the issue's
# goal being at most 50 with 10 connections.
UNRECORDED = max(engine.DEFAULTS["SEND_MAX_UNRECORDED"], 2 * CONNECTIONS)
assert UNRECORDED <= 50


def start_consumer(env):
    return subprocess.Popen([str(ROOT / ".venv" / "bin" / "huey_consumer"), "wsgi.huey", "-w", "2", "-m", "1",
                             "--flush-locks"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def output(process):
    try:
        return process.communicate(timeout=10)[0].decode(errors="replace")[-3000:]
    except subprocess.TimeoutExpired:
        process.kill()
        return "(no output)"


@pytest.fixture
def sink():
    server = TestSmtp(delay=0.005)  # a few milliseconds per message, like a real server
    yield server
    server.stop()


def wait_until_quiet(sink, quiet=1.0, longest=8.0):
    """Until the sink has received nothing new for `quiet` seconds (the worker stopped sending), or
    `longest` seconds passed; returns how many messages arrived meanwhile."""
    start = last = sink.handler.total()
    changed = time.monotonic()
    give_up = changed + longest
    while time.monotonic() < give_up and time.monotonic() - changed < quiet:
        time.sleep(0.05)
        now = sink.handler.total()
        if now != last:
            last, changed = now, time.monotonic()
    return last - start


@pytest.mark.parametrize("writes", ["working", pytest.param("stalled", marks=sqlite_only(
    "another process holds SQLite's one write lock; PostgreSQL locks rows, not the database"))])
def test_kill_9_mid_send_then_restart_mails_everyone_once_except_in_flight(app, tmp_path, queue_env, sink, writes):
    with app.app_context():
        team = make_team()
        campaign, contacts, _ = launched(team, RECIPIENTS, sink.port, connections=CONNECTIONS)
    env = dict(os.environ, **queue_env, LOFT_DATABASE_URL=app.config["DATABASE_URL"],
               LOFT_SECRET_KEY="test-secret", LOFT_LOG_LEVEL="WARNING", LOFT_BASE_URL="http://loft.test",
               LOFT_MAIL_ALLOW_PRIVATE="true",  # the sink listens on loopback
               # One run: the bound below is one run's allowance (tests/test_several_workers.py kills one of three).
               LOFT_SENDING_PROCESSES="1")
    enqueue = f"import wsgi; from tasks.sending import send_campaign; send_campaign({campaign.id})"
    subprocess.run([sys.executable, "-c", enqueue], cwd=ROOT, env=env, check=True, timeout=60)

    consumer = start_consumer(env)
    try:
        deadline = time.monotonic() + 60
        while sink.handler.total() < RECIPIENTS // 3:
            if time.monotonic() > deadline or consumer.poll() is not None:
                consumer.kill()
                pytest.fail("the consumer did not start sending: " + output(consumer))
            time.sleep(0.01)
        blocker = None
        if writes == "stalled":
            # Another process takes the write lock: the worker can neither claim nor record. It may
            # finish what it started, and no more than the allowance, before it waits.
            blocker = sqlite3.connect(app.config["DATABASE_URL"].removeprefix("sqlite:///"), timeout=10)
            blocker.execute("BEGIN IMMEDIATE")
            sent_while_stalled = wait_until_quiet(sink)
        os.kill(consumer.pid, signal.SIGKILL)
        consumer.wait(timeout=10)
        if blocker is not None:
            blocker.rollback()
            blocker.close()
            assert sent_while_stalled <= UNRECORDED, f"{sent_while_stalled} sent while nothing could be recorded"
    finally:
        if consumer.poll() is None:
            consumer.kill()

    with app.app_context():
        at_kill = {s.email: s.status for s in Send.select(Send.email, Send.status).where(Send.campaign == campaign)}
        assert Campaign.get_by_id(campaign.id).state == "sending"
    in_flight = {email for email, status in at_kill.items() if status == "sending"}
    recorded = {email for email, status in at_kill.items() if status == "sent"}
    delivered_at_kill = sink.handler.total()
    assert 0 < len(recorded) <= delivered_at_kill < RECIPIENTS
    # Claimed but not recorded: at most what one run holds (a batch being claimed, half a batch
    # waiting, the lanes' queues, the connections' current messages and unflushed results).
    assert len(in_flight) <= 500 + 250 + 3 * CONNECTIONS + 500

    restarted = start_consumer(env)
    try:
        deadline = time.monotonic() + 120
        while True:
            with app.app_context():
                if Campaign.get_by_id(campaign.id).state == "completed":
                    break
            if time.monotonic() > deadline or restarted.poll() is not None:
                restarted.kill()
                pytest.fail("the restarted consumer did not finish: " + output(restarted))
            time.sleep(0.1)
    finally:
        restarted.terminate()
        restarted.wait(timeout=15)

    delivered = sink.handler.delivered
    everyone = {c.email for c in contacts}
    skipped = everyone - set(delivered)
    twice = {email for email, count in delivered.items() if count > 1}
    assert not skipped, f"{len(skipped)} recipients never got the message"
    assert set(delivered) == everyone
    assert max(delivered.values()) <= 2
    assert twice <= in_flight, "only messages in flight at the kill may arrive twice"
    assert len(twice) <= UNRECORDED, f"{len(twice)} delivered twice; at most {UNRECORDED} may be unrecorded"
    assert all(delivered[email] == 1 for email in recorded)
    with app.app_context():
        assert {s.status for s in Send.select(Send.status).where(Send.campaign == campaign)} == {"sent"}
        assert Campaign.get_by_id(campaign.id).sent == RECIPIENTS
    print(f"\ncrash test (writes {writes}): {delivered_at_kill} delivered before kill -9, {len(in_flight)} in flight, "
          f"{len(twice)} delivered twice, 0 skipped")
