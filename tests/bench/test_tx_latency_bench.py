"""Transactional latency: from POST /api/v1/tx answered (201) to the message accepted by the SMTP sink, p50 and
p99, first alone, then while a campaign of LOFT_BENCH_RECIPIENTS (100,000) sends on the same box.

The API runs in this process (the Flask app through its WSGI test client, with a real key); the transactional
queue is a real SQLite huey queue consumed by the Procfile's `tx` command line in its own process; the campaign
is sent by LOFT_BENCH_SENDERS (2) main-queue consumers; both sinks are aiosmtpd servers on loopback in this
process, so the sink's clock is this process's monotonic clock. Messages are posted at LOFT_BENCH_TX_RATE (20)
a second, LOFT_BENCH_TX_MESSAGES (500) of them each time: a latency figure, not the stream's throughput.
Prints figures and the load average; asserts only that every message arrived."""
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time

import pytest
from aiosmtpd.controller import Controller

from app.api import keys
from app.config import ROOT
from app.models import Campaign
from app.models import SenderDomain
from app.models import utcnow
from app.senders import domains
from tasks import tx_huey
from tests.conftest import free_port
from tests.sending_support import TestSmtp
from tests.sending_support import launched
from tests.sending_support import make_account
from tests.sending_support import make_team

RECIPIENTS = int(os.environ.get("LOFT_BENCH_RECIPIENTS", "100000"))
MESSAGES = int(os.environ.get("LOFT_BENCH_TX_MESSAGES", "500"))
RATE = float(os.environ.get("LOFT_BENCH_TX_RATE", "20"))
SENDERS = int(os.environ.get("LOFT_BENCH_SENDERS", "2"))
TIMEOUT = 600


class Arrivals:
    """An aiosmtpd handler noting when each recipient's message was accepted (this process's monotonic clock)."""

    def __init__(self):
        self.at = {}
        self.sessions = 0  # SMTP connections: the tx worker keeps one open between messages
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        with self.lock:
            self.sessions += 1
        return responses

    async def handle_DATA(self, server, session, envelope):
        now = time.monotonic()
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.at.setdefault(rcpt, now)
        return "250 2.0.0 Ok: queued"


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def tx_command():
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("tx:"))
    return [str(ROOT / part) if part.startswith(".venv/") else part for part in shlex.split(line.partition(":")[2])]


@pytest.fixture
def tx_queue(tmp_path):
    """This process's tx_huey on a real SQLite queue file of the test (not immediate), restored afterwards."""
    saved = dict(tx_huey.storage_kwargs)
    tx_huey.storage_kwargs["filename"] = str(tmp_path / "huey-tx.db")
    tx_huey.immediate = False  # builds the storage from storage_kwargs
    tx_huey.storage = tx_huey.create_storage()
    yield tmp_path / "huey-tx.db"
    tx_huey.storage_kwargs.clear()
    tx_huey.storage_kwargs.update(saved)
    tx_huey.storage = tx_huey.create_storage()


def measure(client, arrivals, label, prefix):
    """Post MESSAGES at RATE a second; the latencies in seconds, from each 201 to its arrival."""
    answered = {}
    start = time.monotonic()
    for number in range(MESSAGES):
        pause = start + number / RATE - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        to = f"{prefix}{number}@example.com"
        response = client.post("/api/v1/tx", json={"to": to, "subject": "Your receipt {{ data.n }}",
                                                   "html": "<p>Order {{ data.n }}: thank you.</p>",
                                                   "data": {"n": number}})
        assert response.status_code == 201, response.get_json()
        answered[to] = time.monotonic()
    deadline = time.monotonic() + TIMEOUT
    while len([to for to in answered if to in arrivals.at]) < MESSAGES:
        assert time.monotonic() < deadline, f"{label}: only {len(arrivals.at)} of {MESSAGES} arrived"
        time.sleep(0.05)
    latencies = [arrivals.at[to] - answered[to] for to in answered]
    print(f"{label}: {MESSAGES} messages at {RATE:g}/s, p50 {statistics.median(latencies) * 1000:.0f} ms, "
          f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms "
          f"(load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
          f"{arrivals.sessions} SMTP connections to the sink so far)")
    return latencies


def warm_up(client, arrivals):
    assert client.post("/api/v1/tx", json={"to": "warm-up@example.com", "subject": "x",
                                           "html": "<p>x</p>"}).status_code == 201
    deadline = time.monotonic() + TIMEOUT
    while "warm-up@example.com" not in arrivals.at:
        assert time.monotonic() < deadline, "the tx consumer never sent the first message"
        time.sleep(0.05)


def test_tx_latency_alone_and_during_a_campaign(app, admin, tx_queue, tmp_path):
    arrivals = Arrivals()
    tx_port = free_port()
    tx_sink = Controller(arrivals, hostname="127.0.0.1", port=tx_port, ready_timeout=10)
    tx_sink.start()
    campaign_sink = TestSmtp()
    processes = []
    env = dict(os.environ, LOFT_DATABASE_URL=app.config["DATABASE_URL"], LOFT_SECRET_KEY="test-secret",
               LOFT_LOG_LEVEL="WARNING", LOFT_BASE_URL="http://loft.test", LOFT_DOTENV="0",
               LOFT_MAIL_ALLOW_PRIVATE="true", LOFT_SENDING_PROCESSES=str(SENDERS),
               LOFT_HUEY_PATH=str(tmp_path / "huey.db"), LOFT_TX_HUEY_PATH=str(tx_queue), LOFT_QUEUE_URL="")
    try:
        with app.app_context():
            team = make_team()
            row = domains.add_domain(team, "acme.test")
            SenderDomain.update(verified_at=utcnow()).where(SenderDomain.id == row.id).execute()
            built = time.monotonic()
            campaign, _contacts, _account = launched(team, RECIPIENTS, campaign_sink.port, connections=8)
            built = time.monotonic() - built
            make_account(team, tx_port, name="Receipts", transactional=True, max_connections=1)
            _key, raw_key = keys.create_key(team, name="bench", role="admin")
        app.config["API_RATE_PER_MINUTE"] = 1_000_000
        client = app.test_client(use_cookies=False)
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {raw_key}"
        print(f"\n\ntransactional latency on SQLite; campaign of {RECIPIENTS:,} built in {built:.1f} s")

        processes.append(subprocess.Popen(tx_command(), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                          stderr=open(tmp_path / "tx.log", "wb")))
        warm_up(client, arrivals)  # the consumer has imported the app and answered once
        alone = measure(client, arrivals, "alone", "alone")

        for number in range(SENDERS):
            processes.append(subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "huey_consumer"), "wsgi.huey", "-w", "1", "-m", "1", "--no-periodic"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"sender{number}.log", "wb")))
        enqueue = f"import wsgi; from tasks.sending import send_campaign; send_campaign({campaign.id})"
        subprocess.run([sys.executable, "-c", enqueue], cwd=ROOT, env=env, check=True, timeout=60)
        deadline = time.monotonic() + TIMEOUT
        while campaign_sink.handler.total() < min(2000, RECIPIENTS // 10):
            assert time.monotonic() < deadline, (tmp_path / "sender0.log").read_text()[-2000:]
            time.sleep(0.1)
        before = campaign_sink.handler.total()
        measure_start = time.monotonic()
        during = measure(client, arrivals, "during the campaign", "during")
        campaign_rate = (campaign_sink.handler.total() - before) / (time.monotonic() - measure_start)
        with app.app_context():
            state = Campaign.get_by_id(campaign.id).state
        print(f"the campaign sent {campaign_rate:,.0f} messages/s meanwhile ({campaign_sink.handler.total():,} of "
              f"{RECIPIENTS:,} by the end of the measurement; campaign {state})")
        assert state == "sending", "the campaign ended before the measurement did: raise LOFT_BENCH_RECIPIENTS"
        assert len(alone) == len(during) == MESSAGES
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        tx_sink.stop()
        campaign_sink.stop()
