"""Benchmark: a welcome burst against a campaign of the same size, both sent by real consumer processes.

N contacts join a list with a live welcome automation (one email step, from a verified domain, so every message is
DKIM-signed; personalised subject and body; tracked links). They enter at once (runs.enter_many, in a process of its
own) as the triggers enter them: each chunk's runs have their email step done as they enter (scheduler.
start_entered: app/automations/mail.py queues their Sends in the step's hidden campaign), and a tick is asked for as
the chunks commit, as an import or a bulk action does (tasks.automations.advance_as_they_enter), which enqueues the
hidden campaign's sending, so entering and sending overlap. LOFT_BENCH_ENTER_THEN_TICK=1 enters them all first
without the step, then enqueues one tick, whose chain of ticks moves 1,000 runs each. The clock stops when every
first email has been handed to postfix's smtp-sink.

On the same consumers, sink and SMTP account, a campaign to the same N contacts (the audience frozen, then
`send_campaign` enqueued) is sent before the burst and another after it, each until it completes; the burst's rate is
compared with the mean of the two. The issue's goal: the automation's rate matches the campaign's (the same ratio to
smtp-source as a campaign; the campaign's own ratio to smtp-source is tests/bench/test_send_bench.py). Bracketing
the burst by two campaigns takes out what the order cost when one of each was sent: the machine's speed drifts by
several per cent within minutes, and whichever went first paid the consumers' first messages. Those are paid before
any clock, by a warm-up campaign of WARM_UP contacts, after every consumer has started (its heartbeat is there).

The consumers have the Procfile's shape: a "worker" process of 8 threads and a "sender" of 4, on the same queue,
without periodic tasks (no minute tick muddles the figure).

Run with `make bench` or
    .venv/bin/python -m pytest -q -s tests/bench/test_automation_welcome_bench.py
Environment: LOFT_BENCH_WELCOME_CONTACTS (default 100000), LOFT_BENCH_TIMELINE=1 (queued and sent, once a second),
LOFT_BENCH_STACK=postgres or LOFT_BENCH_DATABASE_URL + LOFT_BENCH_QUEUE_URL as in tests/bench/bench_support.py.
The figures are printed; nothing asserts on time."""
import datetime
import os
import subprocess
import sys
import time

import pytest
from peewee import Value

from app.automations import runs
from app.config import ROOT
from app.models import Automation
from app.models import AutomationStep
from app.models import Campaign
from app.models import Contact
from app.models import MailingList
from app.models import Send
from app.models import SenderDomain
from app.models import SendRun
from app.models import SendStatus
from app.models import SmtpAccount
from app.models import Subscription
from app.models import Team
from app.senders import domains
from app.sending import ledger
from tests.bench.bench_support import SMTP_SINK
from tests.bench.bench_support import bench_application
from tests.bench.bench_support import bench_servers
from tests.bench.bench_support import box_cpu
from tests.bench.bench_support import busy_share
from tests.bench.bench_support import consumer_logs
from tests.bench.bench_support import consumers
from tests.bench.bench_support import cpu_seconds
from tests.bench.bench_support import enqueue
from tests.bench.bench_support import fill_list
from tests.bench.bench_support import smtp_sink
from tests.bench.bench_support import stop
from tests.bench.bench_support import wait_until_consuming

CONTACTS = int(os.environ.get("LOFT_BENCH_WELCOME_CONTACTS", "100000"))
CONNECTIONS = 10
PROCESSES = os.cpu_count() or 1  # the sending runs per campaign (LOFT_SENDING_PROCESSES), as in production
WORKERS = (8, 4)  # the Procfile's worker and sender consumers
WARM_UP = 2000  # contacts of the untimed campaign that pays the consumers' first messages
ENTER_THEN_TICK = os.environ.get("LOFT_BENCH_ENTER_THEN_TICK", "") == "1"  # enter all, then one tick (before 81e4bd6)
TIMELINE = os.environ.get("LOFT_BENCH_TIMELINE", "") == "1"  # print queued and sent once a second (adds a count a second)
SUBJECT = "Welcome {{ contact.name }}"
BODY = "<p>Welcome, {{ contact.name }}!</p>" + "<p>Lorem ipsum dolor sit amet. </p>" * 40 + \
    '<p><a href="https://example.org/start">Start here</a></p>'

pytestmark = pytest.mark.skipif(not os.path.exists(SMTP_SINK), reason="postfix's smtp-sink is not installed")


@pytest.fixture
def bench(tmp_path):
    with smtp_sink() as port, bench_servers() as servers, \
            bench_application(servers, tmp_path, PROCESSES, f"loft_welcome_bench_{os.getpid()}") as made:
        yield port, made


live_runs = []  # the campaign's live sending runs at each look of wait_until_sent (SendRun ids are reused: not a count)
box = {}  # the last wait_until_sent's share of the machine busy: "until queued" and "after" (the rest of the wait)


def runs_seen():
    """The live sending runs seen while waiting: 'mean (most)'."""
    return f"{sum(live_runs) / max(len(live_runs), 1):.1f} on average, at most {max(live_runs, default=0)}"


def wait_until_sent(campaign_id, started, workers, folder, size=CONTACTS):
    """(seconds from `started` until every message of the campaign was queued (its Send row written), seconds until
    every one was handed to SMTP, (messages sent, consumers' CPU seconds) at the moment all were queued)."""
    queued_after = at_queued = None
    live_runs.clear()
    next_print = 0.0
    box_then = box_at_start = box_cpu()
    while True:
        assert all(p.poll() is None for p in workers), consumer_logs(folder)
        live_runs.append(SendRun.select().where(SendRun.campaign == campaign_id).count())
        sent = Send.select().where((Send.campaign == campaign_id) & (Send.status == SendStatus.SENT)).count()
        seconds = time.perf_counter() - started
        queued = (Send.select().where(Send.campaign == campaign_id).count()
                  if queued_after is None or (TIMELINE and seconds >= next_print) else size)
        if TIMELINE and seconds >= next_print:
            next_print = seconds + 1.0
            print(f"  {seconds:5.1f} s: {queued:7,} queued, {sent:7,} sent, {live_runs[-1]} sending runs", flush=True)
        if queued_after is None and queued >= size:
            queued_after, at_queued, box_then = seconds, (sent, busy(workers)), box_cpu()
            box["until queued"] = busy_share(box_at_start, box_then)
        if sent >= size:
            box_end = box_cpu()
            box["after"], box["whole"] = busy_share(box_then, box_end), busy_share(box_at_start, box_end)
            return queued_after, time.perf_counter() - started, at_queued
        time.sleep(0.1)


def busy(workers):
    """CPU seconds the consumer processes have used so far."""
    return sum(sum(cpu_seconds(p.pid)) for p in workers)


def hidden_campaign(step_id, workers, folder):
    """The email step's campaign, made by the first tick that reaches the step (mail.py) if not made before."""
    while True:
        assert all(p.poll() is None for p in workers), consumer_logs(folder)
        campaign_id = AutomationStep.get_by_id(step_id).campaign_id
        if campaign_id:
            return campaign_id
        time.sleep(0.05)


ENTERING = """
import sys, time
import wsgi, os
from app.db import connection
connection.FAIR_PAUSE_LIMIT = float(os.environ.get("X_PAUSE", "0.05"))
from app.automations import runs, scheduler
from app.models import Automation
from tasks.automations import advance_as_they_enter, advance_soon
with wsgi.app.app_context():
    automation = Automation.get_by_id(int(sys.argv[1]))
    ids = [int(i) for i in open(sys.argv[2]).read().split()]
    print(time.time(), flush=True)
    # What app/automations/triggers.py passes: a chunk's first emails are queued as it enters.
    entered = runs.enter_many(automation, ids, start=scheduler.start_entered, on_entered=advance_as_they_enter())
    advance_soon()
    print(time.time(), entered, time.process_time(), flush=True)
"""


def enter_as_production_does(automation, ids, env, folder):
    """The contacts enter in a process of their own that asks for ticks as its chunks commit (what an import or a
    bulk action does: tasks.automations.advance_as_they_enter), so moving runs and sending start while the rest
    still enter. Returns (the process, its wall-clock start of entering); its Python start-up is not counted."""
    listed = folder / "contact_ids.txt"
    listed.write_text("\n".join(map(str, ids)))
    process = subprocess.Popen([sys.executable, "-c", ENTERING, str(automation.id), str(listed)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, text=True)
    return process, float(process.stdout.readline())


def welcome(automation, step_id, ids, env, workers, folder):
    """The contacts enter, ticks are asked for, until every first email is handed to SMTP: (enter seconds, seconds
    until all were queued, seconds until all were sent, live sending runs seen, consumers' CPU seconds)."""
    cpu_before = busy(workers)
    if ENTER_THEN_TICK:  # the older shape: every contact enters, then one tick is enqueued
        started = time.perf_counter()
        entered = runs.enter_many(automation, ids)
        entering = time.perf_counter() - started
        enqueue_started = time.perf_counter()
        enqueue(env, "from tasks.automations import advance; advance()")
        started += time.perf_counter() - enqueue_started  # the enqueueing process's start is not Loft's time
    else:
        process, began = enter_as_production_does(automation, ids, env, folder)
        started = time.perf_counter() - (time.time() - began)
    queued, total, (sent_then, cpu_then) = wait_until_sent(hidden_campaign(step_id, workers, folder), started,
                                                           workers, folder)
    if not ENTER_THEN_TICK:
        ended, entered, entering_cpu = process.stdout.readline().split()
        entering, entered = float(ended) - began, int(entered)
        print(f"\nthe entering process: {float(entering_cpu):.1f} s CPU (its Python start-up included)")
        assert process.wait(timeout=60) == 0
    assert entered == CONTACTS
    engine_runs = runs_seen()
    shares = dict(box)
    cpu = busy(workers) - cpu_before
    # After the last tick the consumers only send: that part's CPU per message, against the campaign's.
    after_ticks = (busy(workers) - cpu_then) / max(1, CONTACTS - sent_then), (total - queued)
    return entering, queued, total, engine_runs, cpu, sent_then, after_ticks, shares


def campaign_of(team, news, env, workers, folder, size=CONTACTS):
    """The same email as a campaign to the list (of `size` contacts): (freeze seconds, seconds until all were sent,
    consumers' CPU, sending runs seen, the machine's busy share)."""
    campaign = Campaign.create(team=team, name="Welcome as a campaign", from_name="Acme",
                               from_email="news@acme.example", subject=SUBJECT, body=BODY,
                               audience={"lists": [news.id]}, track_opens=True, track_clicks=True)
    cpu_before = busy(workers)
    started = time.perf_counter()
    assert ledger.freeze_audience(campaign) == size
    Campaign.update(state="sending", started_at=datetime.datetime.utcnow()).where(
        Campaign.id == campaign.id).execute()
    freezing = time.perf_counter() - started
    enqueue_started = time.perf_counter()
    enqueue(env, f"from tasks.sending import send_campaign; send_campaign({campaign.id})")
    started += time.perf_counter() - enqueue_started
    _queued, total, _at_queued = wait_until_sent(campaign.id, started, workers, folder, size)
    return freezing, total, busy(workers) - cpu_before, runs_seen(), box["whole"]


def test_welcome_burst_against_a_campaign(bench, tmp_path):
    sink, (app, env, stack) = bench
    with app.app_context():
        team = Team.create(name="Bench", postal_address="1 Main Street, Springfield", default_from_name="Acme",
                           default_from_email="news@acme.example")
        domain = domains.add_domain(team, "acme.example")  # email steps send only From a verified domain
        SenderDomain.update(verified_at=datetime.datetime.utcnow()).where(SenderDomain.id == domain.id).execute()
        SmtpAccount.create(team=team, name="smtp-sink", host="127.0.0.1", port=sink, tls_mode="none",
                           max_connections=CONNECTIONS)
        news = MailingList.create(team=team, name="Newsletter")
        ids = fill_list(team.id, news.id, CONTACTS)
        automation = Automation.create(team=team, name="Welcome", state="live", trigger={"kind": "manual"}, goal={},
                                       from_name="Acme", from_email="news@acme.example")
        step = AutomationStep.create(automation=automation, kind="email", config={
            "subject": SUBJECT, "preheader": "", "kind": "html", "body": BODY, "template_id": None,
            "from_name": "", "from_email": ""})
        automation.first_step_id = step.id
        automation.save()

        warm = MailingList.create(team=team, name="Warm-up")
        Subscription.insert_from(
            Contact.select(Contact.id, Value(warm.id), Value("subscribed"), Value(datetime.datetime(2026, 11, 1)))
            .where(Contact.id << ids[:WARM_UP]),
            [Subscription.contact, Subscription.list, Subscription.status, Subscription.created_at]).execute()

    workers = consumers(env, tmp_path, WORKERS)
    try:
        with app.app_context():
            wait_until_consuming(workers, tmp_path)
            campaign_of(team, warm, env, workers, tmp_path, WARM_UP)
            before = campaign_of(team, news, env, workers, tmp_path)
            entering, queued, total, engine_runs, automation_cpu, sent_then, after_ticks, shares = welcome(
                automation, step.id, ids, env, workers, tmp_path)
            after = campaign_of(team, news, env, workers, tmp_path)
            load = os.getloadavg()[0]
    finally:
        stop(workers)

    automation_rate = CONTACTS / total
    campaign_rates = [CONTACTS / side[1] for side in (before, after)]
    campaign_rate = sum(campaign_rates) / 2
    print(f"\n{stack}, consumers of {WORKERS} threads, {PROCESSES} sending runs per campaign, {CONNECTIONS} "
          f"connections; a campaign, the burst, a campaign; load average after: {load:.1f}")
    print(f"welcome burst, {CONTACTS:,} contacts: enter {entering:.1f} s, every first email handed to SMTP "
          f"{total:.1f} s after they entered = {automation_rate:,.0f}/s (all were queued after "
          f"{queued:.1f} s, when {sent_then:,} had been sent; live sending runs of the step's campaign: "
          f"{engine_runs})")
    print(f"after all were queued: {CONTACTS - sent_then:,} sent in {after_ticks[1]:.1f} s = "
          f"{(CONTACTS - sent_then) / max(after_ticks[1], 1e-9):,.0f}/s, {after_ticks[0] * 1e6:,.0f} us CPU a message")
    for name, (freezing, campaign_total, _cpu, campaign_runs, _share) in (("before", before), ("after", after)):
        print(f"campaign {name} it, {CONTACTS:,} recipients: freeze {freezing:.1f} s, all sent {campaign_total:.1f} s "
              f"after the freeze began = {CONTACTS / campaign_total:,.0f}/s (live sending runs: {campaign_runs})")
    print(f"ratio automation/campaign: {automation_rate / campaign_rate:.2f} (to the campaign before it "
          f"{automation_rate / campaign_rates[0]:.2f}, after it {automation_rate / campaign_rates[1]:.2f})")
    print(f"the machine's CPU busy (both cores, every process): {shares['until queued']:.0%} until all were queued, "
          f"{shares['after']:.0%} after them; {before[4]:.0%} and {after[4]:.0%} while the campaigns sent")
    print(f"consumers' CPU per message (user + system, both processes): automation "
          f"{automation_cpu / CONTACTS * 1e6:,.0f} us, campaigns {before[2] / CONTACTS * 1e6:,.0f} and "
          f"{after[2] / CONTACTS * 1e6:,.0f} us")
