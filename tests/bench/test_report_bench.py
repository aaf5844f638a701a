"""Benchmark: the campaign report for 1,000,000 recipients and 5,000,000 events (issue 5: ≤ 200 ms median).

Run with `make bench` (or `.venv/bin/python -m pytest -q -s tests/bench/test_report_bench.py`).

The data is generated inside SQLite with INSERT ... SELECT over recursive CTEs
(no Python loop per row) and cached in var/bench/reports-<N>.db, so only the
first run pays for it. Every run then clears the aggregates, runs the real
aggregator (app.reports.rollup) over all 5,000,000 events and prints its
throughput, and times GET /reports/campaigns/<id> (and the dashboard) through
the Flask test client, signed in, 20 times each. Nothing asserts on time.

LOFT_BENCH_REPORT_RECIPIENTS=10000 gives a quick run on a small copy.
"""
import datetime
import os
import statistics
import time
from pathlib import Path

import pytest

from app import create_app
from app.auth.services import create_user
from app.cli import migrate
from app.db import db
from app.models import Campaign
from app.models import Link
from app.models import Membership
from app.models import Team
from app.models import Variant
from app.reports import rollup
from tests.conftest import Browserish
from tests.conftest import soup

RECIPIENTS = int(os.environ.get("LOFT_BENCH_REPORT_RECIPIENTS", 1_000_000))
RUNS = 20
VERSION = "reports-bench-2"
ROOT = Path(__file__).resolve().parents[2]
START = datetime.datetime(2026, 11, 2, 9, 0, 0)
EMAIL = "bench@example.com"
PASSWORD = "bench password 1"

AGGREGATES = ("campaign_stat", "hour_stat", "link_stat", "domain_stat", "country_stat", "client_stat", "team_day",
              "send_mark", "link_mark", "report_cursor")

USER_AGENTS = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
               "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
               "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)",
               "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)",
               "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
               "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Mobile")
# Address prefixes in GeoLite2: GB, US, DE, FR, AU, BR, JP, NL.
PREFIXES = ("81.2.69.", "8.8.8.", "85.214.1.", "90.84.1.", "1.1.1.", "200.160.2.", "133.1.1.", "193.0.0.")


def _case(values, expression):
    whens = " ".join(f"WHEN {i} THEN '{value}'" for i, value in enumerate(values))
    return f"CASE {expression} % {len(values)} {whens} END"


def _build(path):
    """Team, campaign, N contacts and sends, and 5 N events, all in SQL."""
    n = RECIPIENTS
    team = Team.create(name="Bench")
    user = create_user(EMAIL, PASSWORD)
    Membership.create(user=user, team=team, role="admin")
    campaign = Campaign.create(team=team, name="Big launch", subject="Our biggest news", state="completed",
                               started_at=START, finished_at=START + datetime.timedelta(hours=1), total=n, sent=n,
                               ab_test={"sample_percent": 10, "metric": "clicks", "wait_minutes": 60},
                               ab_decided_at=START + datetime.timedelta(hours=1))
    a = Variant.create(campaign=campaign, label="A", subject="Our biggest news")
    b = Variant.create(campaign=campaign, label="B", subject="Something new for you", is_winner=True)
    links = [Link.create(campaign=campaign, url=f"https://example.org/page-{i}") for i in range(5)]
    t, c = team.id, campaign.id
    start = START.isoformat(sep=" ")
    ua = _case(USER_AGENTS, "x")
    ip = f"{_case(PREFIXES, 'x')} || (x % 250 + 1)"
    link = f"CASE x % 5 {' '.join(f'WHEN {i} THEN {link.id}' for i, link in enumerate(links))} END"
    domain = ("CASE WHEN x % 10 < 3 THEN 'gmail.com' WHEN x % 10 = 3 THEN 'yahoo.com' "
              "WHEN x % 10 = 4 THEN 'outlook.com' ELSE 'd' || (x % 400) || '.example' END")

    def series(count, select):
        db.execute_sql(f"WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {count}) {select}")

    def at(expression):
        return f"datetime('{start}', '+' || ({expression}) || ' seconds')"

    db.execute_sql("PRAGMA foreign_keys = OFF")  # every reference is made right here; outside a transaction
    with db.atomic():
        series(n, f"""INSERT INTO contact (team_id, email, domain, name, status, attributes, source, consent_source,
                                           consent_ip, consent_text, created_at, updated_at)
                      SELECT {t}, 'user' || x || '@' || d, d, '', 'active', '{{}}', 'import', '', '', '',
                             '{start}', '{start}'
                      FROM (SELECT x, {domain} AS d FROM n)""")
        db.execute_sql(f"""INSERT INTO send (campaign_id, contact_id, variant_id, email, status, attempts, message_id,
                                             error, sent_at)
                           SELECT {c}, id, CASE WHEN id % 20 = 0 THEN {a.id} ELSE {b.id} END,
                                  email, 'sent', 1, '<' || id || '@bench.loft>', '', {at('id % 3600')}
                           FROM contact WHERE team_id = {t} ORDER BY id""")
    # The event table's secondary indexes are rebuilt once at the end: faster than maintaining them per row.
    indexes = db.execute_sql("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'event' "
                             "AND sql IS NOT NULL").fetchall()
    for name, _ in indexes:
        db.execute_sql(f'DROP INDEX "{name}"')
    events = "INSERT INTO event (team_id, contact_id, campaign_id, type, at, data)"
    human = n * 2
    machine = n * 6 // 10
    clicks = n * 125 // 100
    bots = n * 12 // 100
    with db.atomic():
        series(n, f"""{events} SELECT {t}, x, {c}, 'sent', {at('x % 3600')}, '{{"send": ' || x || '}}' FROM n""")
        # Bounces go to the half of the audience that never opens or clicks (the opens take the first 45%).
        series(n // 50, f"""{events} SELECT {t}, {n} + 25 - x * 25, {c}, 'bounced', {at('3600 + x % 7200')},
                           printf('{{"send": %d, "kind": "%s", "hard": %s, "status": "5.1.1", "source": "smtp"}}',
                                  {n} + 25 - x * 25, CASE WHEN x % 4 THEN 'hard' ELSE 'soft' END,
                                  CASE WHEN x % 4 THEN 'true' ELSE 'false' END) FROM n""")
        series(human, f"""{events} SELECT {t}, s, {c}, 'opened', {at('600 + (x * 37) % 604800')},
                          printf('{{"machine": false, "send": %d, "ua": "%s", "ip": "%s"%s}}', s, {ua}, {ip},
                                 CASE WHEN x % 6 = 1 THEN ', "proxy": "google"' ELSE '' END)
                          FROM (SELECT x, (x * 7919) % {n * 45 // 100} + 1 AS s FROM n)""")
        series(machine, f"""{events} SELECT {t}, s, {c}, 'opened', {at('60 + x % 7200')},
                            printf('{{"machine": true, "why": ["apple-mpp-agent"], "send": %d, "ua": "Mozilla/5.0", ' ||
                                   '"ip": "17.58.%d.1"}}', s, x % 250)
                            FROM (SELECT x, (x * 104729) % {n} + 1 AS s FROM n)""")
        series(clicks, f"""{events} SELECT {t}, s, {c}, 'clicked', {at('900 + (x * 53) % 604800')},
                           printf('{{"bot": false, "send": %d, "link_id": %d, "url": "https://example.org/", ' ||
                                  '"ua": "%s", "ip": "%s"}}', s, {link}, {ua}, {ip})
                           FROM (SELECT x, (x * 7919) % {n * 12 // 100} + 1 AS s FROM n)""")
        series(bots, f"""{events} SELECT {t}, s, {c}, 'clicked', {at('5 + x % 600')},
                         printf('{{"bot": true, "why": ["scanner-agent"], "send": %d, "link_id": %d, ' ||
                                '"url": "https://example.org/", "ua": "Proofpoint", "ip": "%s"}}', s, {link}, {ip})
                         FROM (SELECT x, (x * 15485863) % {n} + 1 AS s FROM n)""")
        series(n * 8 // 1000, f"""{events} SELECT {t}, x * 125, {c}, 'unsubscribed', {at('1800 + x * 60')},
                                  '{{"send": ' || (x * 125) || ', "lists": [], "all": true, "source": "one-click"}}'
                                  FROM n""")
        series(n * 2 // 1000, f"""{events} SELECT {t}, x * 500, {c}, 'complained', {at('7200 + x * 60')},
                                  '{{"send": ' || (x * 500) || ', "kind": "complaint", "source": "webhook"}}'
                                  FROM n""")
    for _, sql in indexes:
        db.execute_sql(sql)
    db.execute_sql("PRAGMA foreign_keys = ON")
    db.execute_sql("CREATE TABLE bench_marker (version TEXT)")
    db.execute_sql("INSERT INTO bench_marker VALUES (?)", (VERSION,))
    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return human + machine + clicks + bots


@pytest.fixture(scope="module")
def big():
    folder = ROOT / "var" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"reports-{RECIPIENTS}.db"
    app = create_app({"TESTING": True, "SECRET_KEY": "bench", "DATABASE_URL": f"sqlite:///{path}"})
    with app.app_context():
        migrate()
        built = db.execute_sql("SELECT count(*) FROM sqlite_master WHERE name = 'bench_marker'").fetchone()[0]
        if built and db.execute_sql("SELECT version FROM bench_marker").fetchone()[0] != VERSION:
            built = False
        if not built:
            db.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            migrate()
            started = time.perf_counter()
            _build(path)
            print(f"\nbuilt {RECIPIENTS:,} recipients in {time.perf_counter() - started:.1f} s ({path})")
        else:
            print(f"\nreusing {path}")
        campaign = Campaign.get(Campaign.name == "Big launch")
        yield dict(app=app, campaign=campaign, path=path)
    db.close()


def _median_ms(client, url, runs=RUNS):
    for _ in range(3):  # warm the page cache and the template cache
        assert client.get(url).status_code == 200
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return statistics.median(times), min(times), max(times)


def test_report_page_at_a_million_recipients(big):
    app = big["app"]
    with app.app_context():
        events = db.execute_sql("SELECT count(*) FROM event").fetchone()[0]
        for table in AGGREGATES:
            db.execute_sql(f"DELETE FROM {table}")
        started = time.perf_counter()
        rollup.run()
        seconds = time.perf_counter() - started
        assert rollup.position()[0] == rollup.position()[1]
    print(f"\naggregator: {events:,} events in {seconds:.1f} s = {events / seconds:,.0f} events/s "
          f"(batches of {rollup.BATCH:,})")

    client = Browserish(app.test_client())
    assert client.login(EMAIL, PASSWORD).status_code == 302
    url = f"/reports/campaigns/{big['campaign'].id}"
    page = soup(client.get(url))
    assert page.select_one('[data-metric="sent"] dd').get_text(" ", strip=True).split(" ")[0] == f"{RECIPIENTS:,}"
    assert [th["data-variant"] for th in page.select("#variants th.winner")] == ["B"]
    median, fastest, slowest = _median_ms(client, url)
    print(f"GET {url}: median {median:.1f} ms (min {fastest:.1f}, max {slowest:.1f}) over {RUNS} requests, "
          f"{RECIPIENTS:,} recipients, {events:,} events")
    median, fastest, slowest = _median_ms(client, "/reports/")
    print(f"GET /reports/: median {median:.1f} ms (min {fastest:.1f}, max {slowest:.1f}) over {RUNS} requests")
    median, fastest, slowest = _median_ms(client, f"{url}.csv")
    print(f"GET {url}.csv: median {median:.1f} ms (min {fastest:.1f}, max {slowest:.1f}) over {RUNS} requests")
