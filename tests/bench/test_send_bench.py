"""Benchmark: a 100,000-recipient campaign through the real pipeline into postfix's smtp-sink, sent by
one consumer process per core, on SQLite or on PostgreSQL + Redis.

Personalised (the contact's name in the subject and body), with open and click
tracking, a 20 KB HTML body; sent by LOFT_BENCH_PROCESSES real `huey_consumer
wsgi.huey -w 1` processes (one engine run each: the first run enqueues the next
while the campaign has room, tasks/sending.py) into `smtp-sink`. In the same run,
postfix's `smtp-source` sends the same number of messages of the same size to
the same sink over the same number of connections, for the ratio. Each worker's
CPU is read from /proc/<pid>/stat and its peak RSS is its VmHWM. After the send,
the report aggregator runs over the campaign's events and the campaign report
page is timed through the Flask test client.

Needs the Debian package postfix (for /usr/sbin/smtp-sink and smtp-source):
    apt-get install -y postfix
Run with `make bench` or
    .venv/bin/python -m pytest -q -s tests/bench/test_send_bench.py
Environment:
  LOFT_BENCH_RECIPIENTS   default 100000
  LOFT_BENCH_CONNECTIONS  the SMTP account's connections, shared by the runs (default 10)
  LOFT_BENCH_PROCESSES    consumer processes, one run each (default: the number of cores)
  LOFT_BENCH_DKIM=1       send from a verified domain, so every message is also DKIM-signed; then
                          `openssl speed rsa2048` (one core and -multi <cores>) is run for the share
  LOFT_BENCH_STACK=postgres  start a throwaway PostgreSQL + Redis with .ci/services.sh (stopped after), or
  LOFT_BENCH_DATABASE_URL=postgresql://.../db and LOFT_BENCH_QUEUE_URL=redis://.../N to use running ones
                          (a database of its own is created on that server and dropped after; the Redis
                          database named is emptied first)
  LOFT_BENCH_SMTP_SOURCE=0  leave out the smtp-source comparison (the 1,000,000-recipient run)
The figures are printed; nothing asserts on time.
"""
import datetime
import os
import re
import shutil
import statistics
import subprocess
import time

import pytest

from app.auth.services import create_user
from app.content.message import MessageFactory
from app.models import Campaign
from app.models import MailingList
from app.models import Membership
from app.models import Send
from app.models import SenderDomain
from app.models import SendRun
from app.models import SmtpAccount
from app.models import Team
from app.reports import rollup
from app.senders import domains
from app.sending import ledger
from tests.bench.bench_support import SMTP_SINK
from tests.bench.bench_support import bench_application
from tests.bench.bench_support import bench_servers
from tests.bench.bench_support import consumer_logs
from tests.bench.bench_support import consumers
from tests.bench.bench_support import cpu_seconds
from tests.bench.bench_support import enqueue
from tests.bench.bench_support import fill_list
from tests.bench.bench_support import smtp_sink
from tests.bench.bench_support import stop
from tests.bench.bench_support import wait_until_consuming
from tests.conftest import Browserish
from tests.conftest import soup

SMTP_SOURCE = "/usr/sbin/smtp-source"
RECIPIENTS = int(os.environ.get("LOFT_BENCH_RECIPIENTS", "100000"))
CONNECTIONS = int(os.environ.get("LOFT_BENCH_CONNECTIONS", "10"))
PROCESSES = int(os.environ.get("LOFT_BENCH_PROCESSES") or os.cpu_count() or 1)
DKIM = os.environ.get("LOFT_BENCH_DKIM", "") == "1"
COMPARE = os.environ.get("LOFT_BENCH_SMTP_SOURCE", "1") != "0"
EMAIL = "bench@example.com"
PASSWORD = "bench password 1"

pytestmark = pytest.mark.skipif(
    not (os.path.exists(SMTP_SINK) and os.path.exists(SMTP_SOURCE)),
    reason="postfix's smtp-sink/smtp-source are not installed (apt-get install -y postfix)")


def load():
    return "/".join(f"{figure:.1f}" for figure in os.getloadavg())


def html_body(size=20_000):
    """About `size` bytes of newsletter HTML: personalised, with a dozen tracked links."""
    parts = ['<h1>Hello {{ contact.name }},</h1>',
             '<p>Here is what happened this month at Acme. Thanks for reading, {{ contact.name }}.</p>']
    i = 0
    while sum(len(p) for p in parts) < size:
        i += 1
        parts.append(
            f'<h2 style="font-family:Helvetica,Arial,sans-serif;color:#222">Story {i}: a headline that is long enough</h2>'
            f'<p style="font-family:Helvetica,Arial,sans-serif;font-size:16px;line-height:1.5;color:#333">'
            "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore "
            "et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut "
            "aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse. "
            f'<a href="https://acme.example/stories/{i}?utm_source=newsletter">Read story {i}</a></p>')
    return "\n".join(parts)


@pytest.fixture(scope="module")
def sink():
    with smtp_sink() as port:
        yield port


@pytest.fixture(scope="module")
def servers():
    """(PostgreSQL URL, Redis URL) to run on, or ("", "") for SQLite and huey's SQLite queue."""
    with bench_servers() as urls:
        yield urls


@pytest.fixture(scope="module")
def bench_app(servers, tmp_path_factory):
    """The app on a fresh, migrated database, and the environment its consumer processes get."""
    with bench_application(servers, tmp_path_factory.mktemp("sendbench"), PROCESSES,
                           f"loft_send_bench_{os.getpid()}") as made:
        yield made


class ThreadWaits:
    """How long the workers' threads ran and how long they were ready to run but waited for a core
    (/proc/<pid>/task/<tid>/schedstat), sampled while they live: the engine's threads end with the run."""

    def __init__(self, pids):
        self.pids = pids
        self.seen = {}  # (pid, tid) -> (first (ran, waited), last (ran, waited)) in nanoseconds

    def sample(self):
        for pid in self.pids:
            for task in os.listdir(f"/proc/{pid}/task"):
                try:
                    with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                        ran, waited = (int(x) for x in f.read().split()[:2])
                except (OSError, ValueError):
                    continue  # the thread ended between the listing and the read
                first = self.seen.get((pid, task), ((ran, waited),))[0]
                self.seen[(pid, task)] = (first, (ran, waited))

    def seconds(self):
        """(ran, waited for a core) in seconds, all threads of all workers, over the sampled time."""
        return tuple(sum(last[i] - first[i] for first, last in self.seen.values()) / 1e9 for i in (0, 1))


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def openssl_sign_rate(cores):
    """RSA-2048 signatures a second from `openssl speed` (one process, or -multi `cores`)."""
    command = ["openssl", "speed", "-seconds", "5"] + (["-multi", str(cores)] if cores > 1 else []) + ["rsa2048"]
    output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=300).stdout
    found = re.search(r"^rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)", output, re.M)
    return float(found.group(1)) if found else 0.0


def report_page(app, campaign):
    """Roll the campaign's events into the report tables, then time its report page (median of 10)."""
    started = time.perf_counter()
    rollup.run()
    rolled = time.perf_counter() - started
    client = Browserish(app.test_client())
    assert client.login(EMAIL, PASSWORD).status_code == 302
    url = f"/reports/campaigns/{campaign.id}"
    page = soup(client.get(url))
    shown = page.select_one('[data-metric="sent"] dd').get_text(" ", strip=True).split(" ")[0]
    assert shown == f"{RECIPIENTS:,}"
    times = []
    for _ in range(10):
        started = time.perf_counter()
        assert client.get(url).status_code == 200
        times.append((time.perf_counter() - started) * 1000)
    return rolled, statistics.median(times), min(times), max(times)


def test_send_through_several_workers_and_compare_with_smtp_source(bench_app, sink, tmp_path):
    app, env, stack = bench_app
    with app.app_context():
        started = time.perf_counter()
        team = Team.create(name="Bench", postal_address="1 Main Street, Springfield", default_from_name="Acme",
                           default_from_email="news@acme.example")
        Membership.create(user=create_user(EMAIL, PASSWORD), team=team, role="admin")
        newsletter = MailingList.create(team=team, name="Newsletter")
        fill_list(team.id, newsletter.id, RECIPIENTS)
        if DKIM:
            row = domains.add_domain(team, "acme.example")
            SenderDomain.update(verified_at=datetime.datetime.utcnow()).where(SenderDomain.id == row.id).execute()
        SmtpAccount.create(team=team, name="smtp-sink", host="127.0.0.1", port=sink, tls_mode="none",
                           max_connections=CONNECTIONS)
        campaign = Campaign.create(team=team, name="Monthly news", from_name="Acme", from_email="news@acme.example",
                                   subject="{{ contact.name }}, your monthly news", body=html_body(),
                                   audience={"lists": [newsletter.id]}, track_opens=True, track_clicks=True)
        built = time.perf_counter() - started
        started = time.perf_counter()
        total = ledger.freeze_audience(campaign)
        frozen = time.perf_counter() - started
        assert total == RECIPIENTS
        Campaign.update(state="sending", started_at=datetime.datetime.utcnow()).where(
            Campaign.id == campaign.id).execute()
        sample = Send.select().where(Send.campaign == campaign).first()
        size = len(MessageFactory(campaign).build(sample, sample.contact))
        html_size = len(campaign.body)
    print(f"\n{stack}: {RECIPIENTS:,} contacts built in {built:.1f} s; audience frozen ({RECIPIENTS:,} Sends) in "
          f"{frozen:.2f} s; message {size:,} bytes (HTML source {html_size:,} bytes)")

    workers = consumers(env, tmp_path, [1] * PROCESSES)  # one run each
    loads = []
    try:
        with app.app_context():
            wait_until_consuming(workers, tmp_path)  # every worker has imported the app: the clock can start
        cpu_before = [cpu_seconds(p.pid) for p in workers]
        # The clock starts once the task is in the queue: the enqueueing process's own start (importing
        # the app, seconds on a loaded box) is not the workers' time.
        enqueue_started = time.perf_counter()
        enqueue(env, f"from tasks.sending import send_campaign; send_campaign({campaign.id})")
        started, enqueued_at = time.perf_counter(), datetime.datetime.utcnow()
        enqueue_seconds = started - enqueue_started
        joined = []  # seconds from the enqueue until the first, second... run had joined
        waits = ThreadWaits([p.pid for p in workers])
        waits.sample()
        with app.app_context():
            checked = started
            while Campaign.get_by_id(campaign.id).state != "completed":
                waits.sample()
                assert all(p.poll() is None for p in workers), consumer_logs(tmp_path)
                assert time.perf_counter() - started < 7200, "did not finish in 2 hours"
                if len(joined) < PROCESSES and SendRun.select().count() > len(joined):
                    joined.append(time.perf_counter() - started)
                if time.perf_counter() - checked > 10:
                    loads.append(os.getloadavg()[0])
                    checked = time.perf_counter()
                time.sleep(0.1)
            elapsed = time.perf_counter() - started
            loads.append(os.getloadavg()[0])
            split = [tuple(now - then for now, then in zip(cpu_seconds(p.pid), before))
                     for p, before in zip(workers, cpu_before)]
            cpu = [user + system for user, system in split]
            rss = [peak_rss_mb(p.pid) for p in workers]
            first, last = (Send.select(Send.sent_at).where(Send.campaign == campaign)
                           .order_by(Send.sent_at.asc() if i == 0 else Send.sent_at.desc()).scalar() for i in (0, 1))
            counts = ledger.status_counts(campaign.id)
    finally:
        stop(workers)
    assert counts == {"sent": RECIPIENTS}
    loft_rate = RECIPIENTS / elapsed
    sending_rate = RECIPIENTS / max((last - first).total_seconds(), 1e-9)
    print(f"Loft{' (DKIM-signed)' if DKIM else ''}, {PROCESSES} worker process(es): {RECIPIENTS:,} messages over "
          f"{CONNECTIONS} connections in {elapsed:.1f} s = {loft_rate:,.0f} msg/s (enqueue to completed; "
          f"{sending_rate:,.0f} msg/s between first and last sent_at, the first {(first - enqueued_at).total_seconds():.1f} s after the enqueue); load average during the send "
          f"{min(loads):.1f}-{max(loads):.1f}")
    ran, waited = waits.seconds()
    print(f"  the workers' threads ran {ran:.1f} s and waited {waited:.1f} s for a core while ready to run "
          f"(schedstat, sampled every 0.1 s)")
    print(f"  the enqueueing process (it imports the app) took {enqueue_seconds:.1f} s before the clock; the runs "
          f"joined after "
          f"{', '.join(f'{seconds:.1f}' for seconds in joined)} s")
    for number, (seconds, peak) in enumerate(zip(cpu, rss), 1):
        print(f"  worker {number}: CPU {seconds:.1f} s ({seconds / RECIPIENTS * 1e6 * PROCESSES:.0f} us per message "
              f"it sent, if shared evenly), peak RSS {peak:.0f} MB")
    print(f"  all workers: CPU {sum(cpu):.1f} s = {sum(cpu) / RECIPIENTS * 1e6:.0f} us per message "
          f"({sum(user for user, _ in split) / RECIPIENTS * 1e6:.0f} us user, "
          f"{sum(system for _, system in split) / RECIPIENTS * 1e6:.0f} us system)")

    with app.app_context():
        rolled, median, fastest, slowest = report_page(app, Campaign.get_by_id(campaign.id))
    print(f"report: aggregator over the send's events {rolled:.1f} s; GET /reports/campaigns/{campaign.id} median "
          f"{median:.1f} ms (min {fastest:.1f}, max {slowest:.1f}) over 10 requests")

    if COMPARE:
        for label, extra in (("one message per connection (default)", []), ("connections reused (-d)", ["-d"])):
            started = time.perf_counter()
            subprocess.run([SMTP_SOURCE, *extra, "-s", str(CONNECTIONS), "-m", str(RECIPIENTS), "-l", str(size),
                            "-f", "news@acme.example", "-t", "reader@d1.example", f"127.0.0.1:{sink}"],
                           check=True, timeout=3600, stdout=subprocess.DEVNULL)
            rate = RECIPIENTS / (time.perf_counter() - started)
            print(f"smtp-source, {label}: {rate:,.0f} msg/s (load average after it {load()}) -> Loft is "
                  f"{loft_rate / rate:.0%} of it")
    if DKIM and shutil.which("openssl"):
        cores = os.cpu_count() or 1
        for label, rate in (("one core", openssl_sign_rate(1)), (f"-multi {cores}", openssl_sign_rate(cores))):
            print(f"openssl speed rsa2048, {label}: {rate:,.0f} sign/s -> Loft's DKIM-signed rate is "
                  f"{loft_rate / rate:.0%} of it")
