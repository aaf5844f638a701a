"""Benchmark: how often, and how soon, a campaign's second sending run joins, on consumers of the Procfile's shape.

A run that starts with room for another enqueues a join task (tasks/sending.py, another_run); only a thread of
another worker process may take it, so one that lands in the process already sending goes back (hand_on). A
campaign left with one run sends at about 60 % of its speed until the minute tick starts the other, and the bench
runs no minute tick, so what it counts is the hand-off alone.

Each round: a campaign to N contacts on postfix's smtp-sink, `send_campaign` enqueued from a process of its own, then
the campaign's live SendRun rows watched every 0.1 s until it completes. Printed: rounds in which a second run joined,
and how many seconds after the first it did. Nothing asserts on time.

Run with `make bench` or
    .venv/bin/python -m pytest -q -s tests/bench/test_handoff_bench.py
Environment: LOFT_BENCH_HANDOFF_ROUNDS (default 12), LOFT_BENCH_HANDOFF_CONTACTS (default 20000)."""
import datetime
import os
import statistics
import time

import pytest

from app.models import Campaign
from app.models import MailingList
from app.models import Send
from app.models import SendRun
from app.models import SendStatus
from app.models import SmtpAccount
from app.models import Team
from app.sending import ledger
from tests.bench.bench_support import SMTP_SINK
from tests.bench.bench_support import bench_application
from tests.bench.bench_support import bench_servers
from tests.bench.bench_support import consumer_logs
from tests.bench.bench_support import consumers
from tests.bench.bench_support import enqueue
from tests.bench.bench_support import fill_list
from tests.bench.bench_support import smtp_sink
from tests.bench.bench_support import stop
from tests.bench.bench_support import wait_until_consuming

ROUNDS = int(os.environ.get("LOFT_BENCH_HANDOFF_ROUNDS", "12"))
CONTACTS = int(os.environ.get("LOFT_BENCH_HANDOFF_CONTACTS", "20000"))
PROCESSES = 2  # sending runs per campaign, one in each consumer process
WORKERS = (8, 4)  # the Procfile's worker and sender consumers

pytestmark = pytest.mark.skipif(not os.path.exists(SMTP_SINK), reason="postfix's smtp-sink is not installed")


def one_round(team, news, env, workers, folder, number):
    """Send one campaign: (seconds from the first run until the second joined, or None; seconds until sent)."""
    campaign = Campaign.create(team=team, name=f"Round {number}", from_name="Acme", from_email="news@acme.example",
                               subject="Hello {{ contact.name }}", body="<p>Hello!</p>" * 20,
                               audience={"lists": [news.id]})
    assert ledger.freeze_audience(campaign) == CONTACTS
    Campaign.update(state="sending", started_at=datetime.datetime.utcnow()).where(
        Campaign.id == campaign.id).execute()
    enqueue(env, f"from tasks.sending import send_campaign; send_campaign({campaign.id})")
    started = time.perf_counter()
    first = joined = None
    while True:
        assert all(p.poll() is None for p in workers), consumer_logs(folder)
        live = SendRun.select().where(SendRun.campaign == campaign.id).count()
        now = time.perf_counter() - started
        if live >= 1 and first is None:
            first = now
        if live >= 2 and joined is None:
            joined = now - first
        if not Send.select().where((Send.campaign == campaign.id) & (Send.status != SendStatus.SENT)).exists():
            return joined, now
        time.sleep(0.1)


def test_second_run_joins(tmp_path):
    with smtp_sink() as sink, bench_servers() as servers, \
            bench_application(servers, tmp_path, PROCESSES, f"loft_handoff_bench_{os.getpid()}") as made:
        app, env, stack = made
        with app.app_context():
            team = Team.create(name="Bench", postal_address="1 Main Street, Springfield",
                               default_from_name="Acme", default_from_email="news@acme.example")
            SmtpAccount.create(team=team, name="smtp-sink", host="127.0.0.1", port=sink, tls_mode="none",
                               max_connections=10)
            news = MailingList.create(team=team, name="Newsletter")
            fill_list(team.id, news.id, CONTACTS)
        workers = consumers(env, tmp_path, WORKERS)
        try:
            with app.app_context():
                wait_until_consuming(workers, tmp_path)
                rounds = [one_round(team, news, env, workers, tmp_path, number) for number in range(ROUNDS)]
        finally:
            stop(workers)

    joins = [joined for joined, _total in rounds if joined is not None]
    print(f"\n{stack}, consumers of {WORKERS} threads, {ROUNDS} campaigns of {CONTACTS:,}: the second run joined "
          f"in {len(joins)} of {ROUNDS}")
    if joins:
        print(f"seconds after the first run: median {statistics.median(joins):.1f}, most {max(joins):.1f}")
    print("each round (joined after, all sent after): " + ", ".join(
        f"({'-' if joined is None else f'{joined:.1f}'}, {total:.1f})" for joined, total in rounds))
