"""Benchmark: a /metrics scrape at 1,000,000 contacts with a campaign sending (issue 16: ≤ 50 ms).

Run with `make bench` or
    .venv/bin/python -m pytest -q -s tests/bench/test_metrics_bench.py

The database (a real, migrated SQLite file) holds 1,000,000 contacts and a campaign in the "sending" state
with a Send row for each of them (half sent, half still queued), and a running import; the queue holds the
campaign's send task and a few others, pending and scheduled. The web process is the Procfile's gunicorn
(2 workers) with PROMETHEUS_MULTIPROC_DIR, warmed by requests on 30 routes (so the HTTP histograms have
their series), and four more processes that count as consumers do (messages by result, SMTP replies, the
send latency histogram, tasks) write their files into the same folder: a scrape sums seven processes' files.
Then 50 scrapes over HTTP from this process: median and max, client-side time (the whole request).

LOFT_BENCH_METRICS_CONTACTS sets another size; LOFT_BENCH_PROFILE=1 prints a cProfile of one in-process scrape.
The figures are printed; nothing asserts on time.
"""
import datetime
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

from huey import SqliteHuey
from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest
from prometheus_client import multiprocess
from prometheus_client.parser import text_string_to_metric_families

from app.config import ROOT
from app.metrics.collector import LoftCollector
from app.models import Campaign
from app.models import ImportJob
from app.models import Team
from app.models import utcnow
from tests.conftest import free_port

CONTACTS = int(os.environ.get("LOFT_BENCH_METRICS_CONTACTS", "1000000"))
SCRAPES = 50
CONSUMERS = 4

# What a consumer process counts while it sends (the names and labels of app/metrics/definitions.py).
CONSUMER = """
import random
from app.metrics import definitions as m
for result, n in (("sent", 50000), ("soft_fail", 300), ("bounce", 200), ("failed", 20)):
    m.MESSAGES.labels(result, "campaign").inc(n)
for reply, n in (("2xx", 50000), ("4xx", 300), ("5xx", 200)):
    m.SMTP_REPLIES.labels(reply).inc(n)
for _ in range(2000):
    m.SEND_SECONDS.observe(random.random() / 20)
for task in ("sending.send_campaign", "mail.send_system_email", "imports.run_import", "reports.rollup"):
    m.TASKS_COMPLETED.labels("loft", task).inc(5)
    m.TASKS_FAILED.labels("loft", task).inc(1)
m.TASKS_RUNNING.labels("loft", "sending.send_campaign").inc()
m.TRACKING_HITS.labels("open", "campaign").inc(1000)
"""


def build(path, team_id, campaign_id, count):
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA synchronous=OFF")
    stamp = str(datetime.datetime(2026, 1, 1))
    step = 100_000
    for first in range(0, count, step):
        with connection:
            connection.executemany(
                "INSERT INTO contact (team_id, email, domain, name, status, attributes, source, consent_source, "
                "consent_ip, consent_text, created_at, updated_at) VALUES (?, ?, 'example.com', '', 'active', '{}', "
                "'import', '', '', '', ?, ?)",
                ((team_id, f"person{i}@example.com", stamp, stamp) for i in range(first, min(count, first + step))))
    with connection:
        connection.execute(
            "INSERT INTO send (campaign_id, contact_id, email, status, attempts, message_id, error) "
            "SELECT ?, id, email, CASE WHEN id % 2 = 0 THEN 'sent' ELSE 'queued' END, id % 2, '', '' "
            "FROM contact WHERE team_id = ?", (campaign_id, team_id))
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def scrape(url):
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    return (time.perf_counter() - started) * 1000, body.decode()


def test_metrics_scrape_at_a_million_contacts_with_a_campaign_sending(app, tmp_path, queue_env):
    with app.app_context():
        team = Team.create(name="Bench")
        campaign = Campaign.create(team=team, name="Big send", subject="News", state="sending", total=CONTACTS,
                                   started_at=utcnow(), frozen_at=utcnow())
        ImportJob.create(team=team, filename="more.csv", path="/nonexistent", mapping={}, status="running")
    path = app.config["DATABASE_URL"][len("sqlite:///"):]
    started = time.perf_counter()
    build(path, team.id, campaign.id, CONTACTS)
    built = time.perf_counter() - started

    metrics_dir = tmp_path / "metrics"
    port = free_port()
    env = dict(os.environ, **queue_env, LOFT_BIND=f"127.0.0.1:{port}", LOFT_DATABASE_URL=app.config["DATABASE_URL"],
               LOFT_SECRET_KEY="bench-secret", LOFT_LOG_LEVEL="WARNING", LOFT_METRICS_TOKEN="", LOFT_DOTENV="0",
               PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    # The campaign's send task and others wait in the queue (no consumer takes them during the scrapes).
    enqueue = (f"import wsgi\nfrom tasks import sending, system_mail\nsending.send_campaign({campaign.id})\n"
               "for n in range(20):\n    system_mail.send_system_email(f'p{n}@example.com', 'Hi', 'Body')\n"
               f"sending.send_campaign.schedule(args=({campaign.id},), delay=3600)\n")
    subprocess.run([sys.executable, "-c", enqueue], cwd=ROOT, env=env, check=True, timeout=120)
    for _ in range(CONSUMERS):
        subprocess.run([sys.executable, "-c", CONSUMER], cwd=ROOT, env=env, check=True, timeout=60)

    command = next(line.partition(":")[2].strip() for line in (ROOT / "Procfile").read_text().splitlines()
                   if line.startswith("web:"))
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log_file:
        server = subprocess.Popen(["sh", "-c", f"exec {command}"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=log_file)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            assert server.poll() is None, log_path.read_text()[-3000:]
            try:
                urllib.request.urlopen(f"{base}/favicon.ico", timeout=2).close()
                break
            except OSError:
                time.sleep(0.1)
        routes = ["/login", "/setup", "/health", "/favicon.ico", "/o/x.gif", "/password/reset"] + [
            f"/missing/{n}" for n in range(4)] + ["/dashboard", "/campaigns", "/contacts", "/reports", "/senders",
                                                  "/templates", "/segments", "/imports", "/webhooks", "/notices",
                                                  "/media", "/api/v1/contacts", "/api/v1/campaigns", "/ai/usage",
                                                  "/billing", "/teams", "/account", "/admin/settings"]
        for _ in range(4):
            for route in routes:
                try:
                    urllib.request.urlopen(base + route, timeout=30).close()
                except urllib.error.HTTPError:
                    pass  # 302 to sign in, 401, 404: counted all the same
        for _ in range(5):  # warm
            scrape(f"{base}/metrics")
        times = []
        for _ in range(SCRAPES):
            took, text = scrape(f"{base}/metrics")
            times.append(took)
        families = list(text_string_to_metric_families(text))
        series = sum(len(f.samples) for f in families)
        found = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
        assert found[("loft_messages_total", (("result", "sent"), ("stream", "campaign")))] == 50000 * CONSUMERS
        assert found[("loft_imports_in_progress", (("status", "running"),))] == 1
        assert found[("loft_queue_pending", (("queue", "loft"), ("task", "sending.send_campaign")))] >= 1
        # The same work in this process, CPU time only (the box's other load does not count): the seven
        # processes' files summed and the scrape-time collector on the same queue and database.
        queue = SqliteHuey("loft", filename=queue_env["LOFT_HUEY_PATH"])
        cpu = []
        with app.app_context():
            for _ in range(SCRAPES):
                start = time.thread_time()
                registry = CollectorRegistry()
                multiprocess.MultiProcessCollector(registry, path=str(metrics_dir))
                registry.register(LoftCollector([queue]))
                generate_latest(registry)
                cpu.append((time.thread_time() - start) * 1000)
            if os.environ.get("LOFT_BENCH_PROFILE"):
                import cProfile
                cProfile.runctx("generate_latest(registry)", globals(), locals(), sort="cumulative")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    files = len(list(metrics_dir.glob("*.db")))
    print(f"\n\n/metrics scrape, {CONTACTS:,} contacts, a sending campaign with {CONTACTS:,} Send rows "
          f"(built in {built:.1f} s), {files} value files (2 gunicorn workers, {CONSUMERS} consumers, the enqueuer), {series} samples, "
          f"{len(text):,} bytes")
    print(f"{SCRAPES} scrapes over HTTP: median {statistics.median(times):.1f} ms, "
          f"p90 {statistics.quantiles(times, n=10)[-1]:.1f} ms, max {max(times):.1f} ms")
    print(f"the same scrape in process (no HTTP), CPU time: median {statistics.median(cpu):.1f} ms, "
          f"max {max(cpu):.1f} ms; load average while measuring: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
