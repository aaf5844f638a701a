"""Benchmark: the campaign list at 10,000 campaigns (issue 11: ≤ 100 ms server time).

Run with:
    .venv/bin/python -m pytest -q -s tests/bench/test_campaign_list_bench.py

10,000 campaigns in every state, each with its CampaignStat row (opens and clicks) and 20 Send rows
(the ledger the sent counts come from), 200,000 in all, are written with executemany into a real,
migrated SQLite file; then the list page is requested through the Flask test client, signed in, and
timed end to end (routing, session, queries, template): p50 and p95 of 40 requests per case, and the
median CPU time of the request. Set
LOFT_BENCH_CAMPAIGNS to try another size.
"""
import os
import sqlite3
import statistics
import time

from app.models import Campaign
from app.models import MailingList
from app.models import Segment
from app.models import Team
from tests.conftest import soup

CAMPAIGNS = int(os.environ.get("LOFT_BENCH_CAMPAIGNS", "10000"))
SENDS_PER_CAMPAIGN = 20
ROUNDS = 40
STATES = ["completed"] * 80 + ["draft"] * 12 + ["scheduled"] * 4 + ["paused", "failed", "cancelled", "sending"]
TOPICS = ["Spring sale", "Weekly digest", "Product update", "Webinar invitation", "Black Friday", "Welcome series",
          "Customer story", "Release notes", "Survey", "Holiday hours"]


def build(path, team_id, list_ids, segment_id, count):
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA synchronous=OFF")
    campaigns = []
    for i in range(count):
        state = STATES[i % len(STATES)]
        went_out = state in ("completed", "paused", "failed", "cancelled", "sending")
        day = f"2026-{1 + i * 11 // count:02d}-{1 + i % 28:02d} 09:{i % 60:02d}:00"
        audience = ('{"lists": [%d, %d], "segments": [%d], "exclude_lists": [], "exclude_segments": []}'
                    % (list_ids[i % 3], list_ids[(i + 1) % 3], segment_id))
        campaigns.append((team_id, f"{TOPICS[i % len(TOPICS)]} #{i}", state, f"Subject {i}", audience,
                          day if state == "scheduled" else None, day if went_out else None,
                          day if went_out else None, SENDS_PER_CAMPAIGN if went_out else 0, day, day))
    columns = ("team_id, name, state, from_name, from_email, reply_to, subject, preheader, kind, body, audience, "
               "track_opens, track_clicks, ab_test, scheduled_at, started_at, frozen_at, total, sent, failed, cursor, "
               "state_reason, created_at, updated_at")
    values = "?, ?, ?, 'Acme', 'news@acme.example', '', ?, '', 'html', '<p>Hi</p>', ?, 1, 1, '{}', ?, ?, ?, ?, 0, 0, " \
             "0, '', ?, ?"
    # Columns added since (required, without a default) get an empty JSON object or 0.
    for _cid, name, kind, notnull, default, _pk in connection.execute("PRAGMA table_info(campaign)"):
        if notnull and default is None and name != "id" and name not in columns.split(", "):
            columns += f", {name}"
            values += ", 0" if "INT" in kind.upper() else ", '{}'"
    with connection:
        connection.executemany(f"INSERT INTO campaign ({columns}) VALUES ({values})", campaigns)
        sent = [row[0] for row in connection.execute(
            "SELECT id FROM campaign WHERE team_id = ? AND started_at IS NOT NULL ORDER BY id", (team_id,))]
        connection.executemany(
            "INSERT INTO send (campaign_id, email, status, attempts, message_id, error) "
            "VALUES (?, ?, ?, 1, '', '')",
            ((cid, f"r{n}@example.com", "bounced" if n == 0 else "sent")
             for cid in sent for n in range(SENDS_PER_CAMPAIGN)))
        connection.executemany(
            "INSERT INTO campaign_stat (campaign_id, variant_id, sent, bounced_hard, bounced_soft, bounced_other, "
            "bounced_unique, opens_total, opens_machine, opens_unique, clicks_total, clicks_bot, clicks_unique, "
            "unsubscribes, complaints) VALUES (?, 0, ?, 1, 0, 0, 1, ?, 2, ?, ?, 0, ?, 0, 0)",
            ((cid, SENDS_PER_CAMPAIGN, 12, 3 + cid % 7, 4, 1 + cid % 3) for cid in sent))
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def measure(client, url, headers=None):
    for _ in range(3):  # warm the page cache and the template cache
        response = client.get(url, headers=headers or {})
    assert response.status_code == 200, (url, response.status_code)
    rows = soup(response).select("#campaign-results tbody tr")
    assert rows, url
    times, cpu = [], []
    for _ in range(ROUNDS):
        start, start_cpu = time.perf_counter(), time.thread_time()
        response = client.get(url, headers=headers or {})
        response.get_data()
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.thread_time() - start_cpu) * 1000)
    return statistics.median(times), statistics.quantiles(times, n=20)[-1], statistics.median(cpu), len(rows)


def test_campaign_list_at_ten_thousand(app, web, admin):
    team = Team.get(Team.name == "Acme")
    lists = [MailingList.create(team=team, name=name).id for name in ("Newsletter", "Customers", "Beta testers")]
    segment = Segment.create(team=team, name="Engaged", rules={})
    path = app.config["DATABASE_URL"][len("sqlite:///"):]
    started = time.perf_counter()
    build(path, team.id, lists, segment.id, CAMPAIGNS)
    built = time.perf_counter() - started
    ids = [c for (c,) in Campaign.select(Campaign.id).where(Campaign.team == team).order_by(Campaign.id).tuples()]
    deep = ids[len(ids) // 100]  # 99 % of the way down
    cases = [
        ("first page", "/campaigns/"),
        ("first page, htmx fragment", "/campaigns/"),
        ("deep page (?before=, 99% down)", f"/campaigns/?before={deep}"),
        ("filtered: state = completed", "/campaigns/?state=completed"),
        ("filtered: state = scheduled", "/campaigns/?state=scheduled"),
        ("search: 'black friday' (1 in 10)", "/campaigns/?q=black+friday"),
        ("search: '#4242' (one match)", "/campaigns/?q=%234242"),
        ("search + filter", "/campaigns/?q=digest&state=completed"),
    ]
    results = {}
    print(f"\n\nCampaign list, {CAMPAIGNS:,} campaigns, {len(ids) and CAMPAIGNS * 0.84 * SENDS_PER_CAMPAIGN:,.0f} "
          f"sends (built in {built:.1f} s)")
    print(f"{'case':40} {'p50 ms':>8} {'p95 ms':>8} {'CPU p50':>8} {'rows':>5}")
    for label, url in cases:
        headers = {"HX-Request": "true"} if "htmx" in label else None
        p50, p95, cpu, rows = measure(web.client, url, headers=headers)
        results[label] = (p50, p95, cpu)
        print(f"{label:40} {p50:8.1f} {p95:8.1f} {cpu:8.1f} {rows:5d}")
    print(f"(load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    # The target. Benchmarks (not tests) may hold a speed promise.
    # On a machine shared with other work the wall time mostly measures waiting for a core, so the promise
    # is checked on the CPU time the request thread used (it includes SQLite's work, done in-process).
    for label in ("first page", "filtered: state = completed", "search: 'black friday' (1 in 10)"):
        assert results[label][2] <= 100, results
