"""Benchmark: the campaign report for 1,000,000 recipients and 5,000,000 events (≤ 200 ms median), on SQLite
or PostgreSQL.

Run with `make bench` (or `.venv/bin/python -m pytest -q -s tests/bench/test_report_bench.py`).

The data is generated inside the database with INSERT ... SELECT over a series of numbers (a recursive
CTE on SQLite, generate_series on PostgreSQL; no Python loop per row), so nothing is sent. SQLite keeps
it in var/bench/reports-<N>.db, PostgreSQL in a database of its own (loft_report_bench_<N>), so only the
first run pays for it. Every run then clears the aggregates, runs the real aggregator
(app.reports.rollup) over all 5,000,000 events and prints its throughput, and times
GET /reports/campaigns/<id> (and the dashboard and the CSV) through the Flask test client, signed in,
LOFT_BENCH_REPORT_RUNS times each, then prints what each statement of the report page took (the median of 5 requests).
Nothing asserts on time.

Environment:
  LOFT_BENCH_REPORT_RECIPIENTS=10000  a quick run on a small copy
  LOFT_BENCH_REPORT_ROLLUP=0          keep the aggregates of the last run instead of counting again
  LOFT_BENCH_REPORT_RUNS=20           timed requests of each page
  LOFT_BENCH_STACK=postgres, or LOFT_BENCH_DATABASE_URL=postgresql://...  run on PostgreSQL
                                      (tests/bench/bench_support.py); with a given server the
                                      bench database stays there for the next run
"""
import contextlib
import datetime
import os
import statistics
import time
from pathlib import Path

import pytest

from app import create_app
from app import db as dialect
from app.auth.services import create_user
from app.cli import migrate
from app.db import db
from app.models import Campaign
from app.models import Link
from app.models import Membership
from app.models import Team
from app.models import Variant
from app.reports import rollup
from tests.bench.bench_support import bench_servers
from tests.conftest import Browserish
from tests.conftest import soup
from tests.stack_support import PostgresServer

RECIPIENTS = int(os.environ.get("LOFT_BENCH_REPORT_RECIPIENTS", 1_000_000))
RUNS = int(os.environ.get("LOFT_BENCH_REPORT_RUNS", 20))
ROLLUP = os.environ.get("LOFT_BENCH_REPORT_ROLLUP", "1") != "0"
VERSION = "reports-bench-4"
ROOT = Path(__file__).resolve().parents[2]
START = datetime.datetime(2026, 11, 2, 9, 0, 0)
EMAIL = "bench@example.com"
PASSWORD = "bench password 1"

AGGREGATES = ("campaign_stat", "hour_stat", "link_stat", "domain_stat", "country_stat", "client_stat", "team_day",
              "send_mark", "link_mark", "ab_stat", "ab_split", "report_cursor")

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


class _Spelling:
    """The few words the generated data is spelled differently in on SQLite and PostgreSQL."""

    def __init__(self, sqlite):
        self.sqlite = sqlite
        self.printf = "printf" if sqlite else "format"  # both take %s for numbers and text

    def series(self, count, select):
        """Run `select` (an INSERT ... SELECT ... FROM n) with n(x) = 1 .. count."""
        if self.sqlite:
            numbers = f"WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {count})"
        else:
            numbers = f"WITH n(x) AS (SELECT generate_series(1::bigint, {count}))"
        self.execute(f"{numbers} {select}")

    def execute(self, sql):
        """Run SQL text that has no parameters (psycopg reads every % as the start of one)."""
        db.execute_sql(sql if self.sqlite else sql.replace("%", "%%"))

    def timestamp(self, text):
        return f"'{text}'" if self.sqlite else f"timestamp '{text}'"

    def at(self, start, expression):
        if self.sqlite:
            return f"datetime('{start}', '+' || ({expression}) || ' seconds')"
        return f"(timestamp '{start}' + ({expression}) * interval '1 second')"

    def json(self, expression):
        return expression if self.sqlite else f"({expression})::jsonb"

    def without_checks(self, on):
        """Foreign keys off while the bench writes rows whose references it made itself."""
        if self.sqlite:
            db.execute_sql(f"PRAGMA foreign_keys = {'OFF' if on else 'ON'}")  # outside a transaction
        else:
            db.execute_sql(f"SET session_replication_role = {'replica' if on else 'origin'}")

    def event_indexes(self):
        """(name, CREATE statement) of the event table's secondary indexes."""
        if self.sqlite:
            return db.execute_sql("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'event' "
                                  "AND sql IS NOT NULL").fetchall()
        return db.execute_sql("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'event' "
                              "AND indexname <> 'event_pkey'").fetchall()

    def has_marker(self):
        if self.sqlite:
            found = db.execute_sql("SELECT count(*) FROM sqlite_master WHERE name = 'bench_marker'").fetchone()[0]
        else:
            found = db.execute_sql("SELECT count(*) FROM information_schema.tables "
                                   "WHERE table_name = 'bench_marker'").fetchone()[0]
        return bool(found) and db.execute_sql("SELECT version FROM bench_marker").fetchone()[0] == VERSION

    def settle(self):
        if self.sqlite:
            db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        else:  # what autovacuum does some time after a big write: statistics and the visibility map
            db.execute_sql("VACUUM ANALYZE")


def _build():
    """Team, campaign, N contacts and sends, and 5 N events, all in SQL."""
    n = RECIPIENTS
    say = _Spelling(dialect.is_sqlite())
    team = Team.create(name="Bench")
    user = create_user(EMAIL, PASSWORD)
    Membership.create(user=user, team=team, role="admin")
    campaign = Campaign.create(team=team, name="Big launch", subject="Our biggest news", state="completed",
                               frozen_at=START, started_at=START, finished_at=START + datetime.timedelta(hours=1),
                               total=n, sent=n,
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
    series, at, printf, json = say.series, (lambda expression: say.at(start, expression)), say.printf, say.json

    say.without_checks(True)  # every reference is made right here
    with db.atomic():
        series(n, f"""INSERT INTO contact (team_id, email, domain, name, status, attributes, source, consent_source,
                                           consent_ip, consent_text, created_at, updated_at)
                      SELECT {t}, 'user' || x || '@' || d, d, '', 'active', '{{}}', 'import', '', '', '',
                             {say.timestamp(start)}, {say.timestamp(start)}
                      FROM (SELECT x, {domain} AS d FROM n) AS numbered""")
        say.execute(f"""INSERT INTO send (campaign_id, contact_id, variant_id, email, status, attempts, message_id,
                                             error, sent_at)
                           SELECT {c}, id, CASE WHEN id % 20 = 0 THEN {a.id} ELSE {b.id} END,
                                  email, 'sent', 1, '<' || id || '@bench.loft>', '', {at('id % 3600')}
                           FROM contact WHERE team_id = {t} ORDER BY id""")
        # The sends of the bounce events below (2 %) bounced in the ledger too.
        say.execute(f"UPDATE send SET status = 'bounced' WHERE campaign_id = {c} AND id >= {n // 2 + 25} "
                    f"AND ({n} - id) % 25 = 0")
    # The event table's secondary indexes are rebuilt once at the end: faster than maintaining them per row.
    indexes = say.event_indexes()
    for name, _ in indexes:
        db.execute_sql(f'DROP INDEX "{name}"')
    events = "INSERT INTO event (team_id, contact_id, campaign_id, type, at, data)"
    human = n * 2
    machine = n * 6 // 10
    clicks = n * 125 // 100
    bots = n * 12 // 100
    sent = json("'{\"send\": ' || x || '}'")
    bounced = json(f"""{printf}('{{"send": %s, "kind": "%s", "hard": %s, "status": "5.1.1", "source": "smtp"}}',
                              {n} + 25 - x * 25, CASE WHEN x % 4 <> 0 THEN 'hard' ELSE 'soft' END,
                              CASE WHEN x % 4 <> 0 THEN 'true' ELSE 'false' END)""")
    opened = json(f"""{printf}('{{"machine": false, "send": %s, "ua": "%s", "ip": "%s"%s}}', s, {ua}, {ip},
                             CASE WHEN x % 6 = 1 THEN ', "proxy": "google"' ELSE '' END)""")
    machine_opened = json(f"""{printf}('{{"machine": true, "why": ["apple-mpp-agent"], "send": %s, ' ||
                                     '"ua": "Mozilla/5.0", "ip": "17.58.%s.1"}}', s, x % 250)""")
    clicked = json(f"""{printf}('{{"bot": false, "send": %s, "link_id": %s, "url": "https://example.org/", ' ||
                              '"ua": "%s", "ip": "%s"}}', s, {link}, {ua}, {ip})""")
    scanned = json(f"""{printf}('{{"bot": true, "why": ["scanner-agent"], "send": %s, "link_id": %s, ' ||
                              '"url": "https://example.org/", "ua": "Proofpoint", "ip": "%s"}}', s, {link}, {ip})""")
    unsubscribed = json("""'{"send": ' || (x * 125) || ', "lists": [], "all": true, "source": "one-click"}'""")
    complained = json("""'{"send": ' || (x * 500) || ', "kind": "complaint", "source": "webhook"}'""")
    with db.atomic():
        series(n, f"{events} SELECT {t}, x, {c}, 'sent', {at('x % 3600')}, {sent} FROM n")
        # Bounces go to the half of the audience that never opens or clicks (the opens take the first 45%).
        series(n // 50, f"""{events} SELECT {t}, {n} + 25 - x * 25, {c}, 'bounced', {at('3600 + x % 7200')},
                            {bounced} FROM n""")
        series(human, f"""{events} SELECT {t}, s, {c}, 'opened', {at('600 + (x * 37) % 604800')}, {opened}
                          FROM (SELECT x, (x * 7919) % {n * 45 // 100} + 1 AS s FROM n) AS numbered""")
        series(machine, f"""{events} SELECT {t}, s, {c}, 'opened', {at('60 + x % 7200')}, {machine_opened}
                            FROM (SELECT x, (x * 104729) % {n} + 1 AS s FROM n) AS numbered""")
        series(clicks, f"""{events} SELECT {t}, s, {c}, 'clicked', {at('900 + (x * 53) % 604800')}, {clicked}
                           FROM (SELECT x, (x * 7919) % {n * 12 // 100} + 1 AS s FROM n) AS numbered""")
        series(bots, f"""{events} SELECT {t}, s, {c}, 'clicked', {at('5 + x % 600')}, {scanned}
                         FROM (SELECT x, (x * 15485863) % {n} + 1 AS s FROM n) AS numbered""")
        series(n * 8 // 1000, f"""{events} SELECT {t}, x * 125, {c}, 'unsubscribed', {at('1800 + x * 60')},
                                  {unsubscribed} FROM n""")
        series(n * 2 // 1000, f"""{events} SELECT {t}, x * 500, {c}, 'complained', {at('7200 + x * 60')},
                                  {complained} FROM n""")
    for _, sql in indexes:
        db.execute_sql(sql)
    say.without_checks(False)
    db.execute_sql("CREATE TABLE bench_marker (version TEXT)")
    db.execute_sql(f"INSERT INTO bench_marker VALUES ({db.param})", (VERSION,))
    say.settle()
    return human + machine + clicks + bots


@contextlib.contextmanager
def _database():
    """The bench database's URL and whether it holds a finished build. SQLite: var/bench/reports-<N>.db.
    PostgreSQL: a database of its own on the server, kept between runs when the server is one given
    by LOFT_BENCH_DATABASE_URL."""
    with bench_servers() as (server_url, _queue_url):
        if not server_url:
            folder = ROOT / "var" / "bench"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"reports-{RECIPIENTS}.db"
            yield f"sqlite:///{path}", lambda: [Path(f"{path}{suffix}").unlink(missing_ok=True)
                                                for suffix in ("", "-wal", "-shm")]
            return
        server, name = PostgresServer(server_url), f"loft_report_bench_{RECIPIENTS}"
        exists = server.connection.execute("SELECT count(*) FROM pg_database WHERE datname = %s",
                                           (name,)).fetchone()[0]
        url = server.url(name) if exists else server.create(name)
        try:
            yield url, lambda: server.create(name)
        finally:
            server.close()


@pytest.fixture(scope="module")
def big():
    with _database() as (url, wipe):
        app = create_app({"TESTING": True, "SECRET_KEY": "bench", "DATABASE_URL": url})
        with app.app_context():
            migrate()
            if not _Spelling(dialect.is_sqlite()).has_marker():
                db.close()
                wipe()
                migrate()
                started = time.perf_counter()
                _build()
                print(f"\nbuilt {RECIPIENTS:,} recipients in {time.perf_counter() - started:.1f} s ({url})")
            else:
                print(f"\nreusing {url}")
            campaign = Campaign.get(Campaign.name == "Big launch")
            yield dict(app=app, campaign=campaign, url=url)
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


@contextlib.contextmanager
def _timed_statements():
    """[(milliseconds, sql)] of every statement run meanwhile (peewee runs them all through execute_sql)."""
    database, timings = db.obj, []
    original = database.execute_sql

    def timed(sql, *args, **kwargs):
        started = time.perf_counter()
        try:
            return original(sql, *args, **kwargs)
        finally:
            timings.append(((time.perf_counter() - started) * 1000, " ".join(sql.split())))

    database.execute_sql = timed
    try:
        yield timings
    finally:
        del database.execute_sql


def _statement_times(client, url, runs=5):
    """[(median ms, sql)] of each statement the page runs, in the order it runs them."""
    rounds = []
    for _ in range(runs):
        with _timed_statements() as timings:
            assert client.get(url).status_code == 200
        rounds.append(timings)
    # A request that found new events to count (rollup.catch_up) runs more statements: left out.
    rounds = [r for r in rounds if [sql for _, sql in r] == [sql for _, sql in rounds[-1]]]
    return [(statistics.median(r[i][0] for r in rounds), sql) for i, (_, sql) in enumerate(rounds[-1])]


def test_report_page_at_a_million_recipients(big):
    app = big["app"]
    with app.app_context():
        events = db.execute_sql("SELECT count(*) FROM event").fetchone()[0]
        if ROLLUP or rollup.position()[0] != rollup.position()[1]:
            for table in AGGREGATES:
                db.execute_sql(f"DELETE FROM {table}")
            started = time.perf_counter()
            rollup.run()
            seconds = time.perf_counter() - started
            print(f"\naggregator: {events:,} events in {seconds:.1f} s = {events / seconds:,.0f} events/s "
                  f"(batches of {rollup.BATCH:,})")
        assert rollup.position()[0] == rollup.position()[1]
        stack = "SQLite" if dialect.is_sqlite() else "PostgreSQL"

    client = Browserish(app.test_client())
    assert client.login(EMAIL, PASSWORD).status_code == 302
    url = f"/reports/campaigns/{big['campaign'].id}"
    page = soup(client.get(url))
    assert page.select_one('[data-metric="sent"] dd').get_text(" ", strip=True).split(" ")[0] == f"{RECIPIENTS:,}"
    assert [th["data-variant"] for th in page.select("#variants th.winner")] == ["B"]
    median, fastest, slowest = _median_ms(client, url)
    print(f"{stack}: GET {url}: median {median:.1f} ms (min {fastest:.1f}, max {slowest:.1f}) over {RUNS} "
          f"requests, {RECIPIENTS:,} recipients, {events:,} events")
    statements = _statement_times(client, url)
    print(f"its {len(statements)} statements, {sum(ms for ms, _ in statements):.1f} ms in all (median of 5):")
    for ms, sql in statements:
        print(f"  {ms:7.2f} ms  {sql[:160]}")
    median, fastest, slowest = _median_ms(client, "/reports/")
    print(f"GET /reports/: median {median:.1f} ms (min {fastest:.1f}, max {slowest:.1f}) over {RUNS} requests")
    median, fastest, slowest = _median_ms(client, f"{url}.csv")
    print(f"GET {url}.csv: median {median:.1f} ms (min {fastest:.1f}, max {slowest:.1f}) over {RUNS} requests")
