"""Benchmark: the API at 1,000,000 contacts on SQLite: GET /api/v1/contacts/{id} (issue goal: p50 ≤ 5 ms
server time) and bulk upsert through POST /api/v1/contacts/bulk (goal: ≥ 20,000 contacts/s).

Run: .venv/bin/python -m pytest -q -s tests/bench/test_api_bench.py
The GET half on PostgreSQL + Redis: with LOFT_TEST_DATABASE_URL and LOFT_TEST_QUEUE_URL set (.ci/services.sh),
`... tests/bench/test_api_bench.py -k get_contact`.

The contacts are written straight into the test's migrated SQLite file (INSERT ... SELECT); then each GET
goes through the whole app in process, as a gunicorn worker runs it: routing, the Bearer key, the per-key
rate count, the query, pydantic, JSON, and the request's teardown (where the thread's connection is kept or
closed). "Server time" is the WSGI call from its start until the answer's body is read and closed; the
Flask test client's own work around it is printed apart. No app context is pushed around the requests, so
each request ends its own, as a served one does. The bulk upsert runs the import task in the request (the test queue is
immediate), so its figure is the whole job: the rows validated, handed to the job, checked and written.
LOFT_BENCH_CONTACTS sets the size. Nothing asserts on time.
"""
import gc
import json
import os
import random
import sqlite3
import statistics
import time

import psycopg

from tests import stack_support
from tests.api_support import ApiClient
from tests.stack_support import postgres_only
from app.db import db
from app.api import keys
from app.models import Contact
from app.models import Team

CONTACTS = int(os.environ.get("LOFT_BENCH_CONTACTS", "1000000"))
READS = 2000
BULK = 10_000


def build(path, team_id, count):
    """`count` contacts of the team, made inside SQLite (a recursive CTE; no Python loop per row)."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA synchronous=OFF")
    with connection:
        connection.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO contact (team_id, email, domain, name, status, attributes, source, consent_source, "
            "consent_ip, consent_text, created_at, updated_at) "
            "SELECT ?, 'person' || i || '@example.com', 'example.com', 'Person ' || i, 'active', "
            "CASE WHEN i % 4 = 0 THEN '{\"plan\": \"pro\"}' ELSE '{}' END, 'import', '', '', '', "
            "'2026-01-01 00:00:00', '2026-01-01 00:00:00' FROM n", (count, team_id))
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def build_postgres(url, team_id, count):
    """The same contacts in PostgreSQL (generate_series), then ANALYZE, as after any big import."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO contact (team_id, email, domain, name, status, attributes, source, consent_source, "
            "consent_ip, consent_text, created_at, updated_at) "
            "SELECT %s, 'person' || i || '@example.com', 'example.com', 'Person ' || i, 'active', "
            "CASE WHEN i %% 4 = 0 THEN '{\"plan\": \"pro\"}'::jsonb ELSE '{}'::jsonb END, 'import', '', '', '', "
            "'2026-01-01 00:00:00', '2026-01-01 00:00:00' FROM generate_series(1, %s) AS i", (team_id, count))
        connection.execute("ANALYZE contact")


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


class ServerClock:
    """WSGI middleware: the time from the app's call to the close of its answer, teardown included."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app
        self.times = []
        self.cpu = []

    def __call__(self, environ, start_response):
        start, cpu = time.perf_counter(), time.thread_time()
        answer = self.wsgi_app(environ, start_response)
        try:
            body = b"".join(answer)
        finally:
            getattr(answer, "close", lambda: None)()
        self.times.append((time.perf_counter() - start) * 1000)
        self.cpu.append((time.thread_time() - cpu) * 1000)
        return [body]


def contact_reads(app, api, ids):
    """GET /api/v1/contacts/{id} for each of `ids`: server time p50/p90/p99, and CPU time per request."""
    clock = app.wsgi_app = ServerClock(app.wsgi_app)
    try:
        for contact_id in ids[:50]:  # warm the page cache and the process's copy of the key
            assert api.get(f"/api/v1/contacts/{contact_id}").status_code == 200
        clock.times.clear()
        clock.cpu.clear()
        load = os.getloadavg()[0]
        round_trips = []
        cpu = time.process_time()
        for contact_id in ids:
            start = time.perf_counter()
            response = api.get(f"/api/v1/contacts/{contact_id}")
            response.get_data()
            round_trips.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200
        cpu = (time.process_time() - cpu) * 1000 / len(ids)
    finally:
        app.wsgi_app = clock.wsgi_app
    times = clock.times
    print(f"GET /api/v1/contacts/{{id}}, {len(ids):,} random ids, server time (WSGI call incl. teardown): "
          f"p50 {statistics.median(times):.2f} ms, p90 {percentile(times, 0.90):.2f} ms, "
          f"p99 {percentile(times, 0.99):.2f} ms, max {max(times):.2f} ms; its CPU time p50 "
          f"{statistics.median(clock.cpu):.2f} ms, p90 {percentile(clock.cpu, 0.90):.2f} ms, p99 "
          f"{percentile(clock.cpu, 0.99):.2f} ms; {cpu:.2f} ms of CPU a request with the test client's; "
          f"test client round trip p50 {statistics.median(round_trips):.2f} ms; "
          f"load {load:.2f} before, {os.getloadavg()[0]:.2f} after")


def test_api_at_a_million_contacts(app, admin):
    """No app context stays pushed around the requests (the `ctx` fixture's would share its `g`, with the
    signed-in admin of the setup, with every request)."""
    app.config["API_RATE_PER_MINUTE"] = 10_000_000
    with app.app_context():
        team = Team.get(Team.name == "Acme")
        key, raw = keys.create_key(team, name="bench", role="admin")
    api = ApiClient(app, raw, key)
    path = app.config["DATABASE_URL"][len("sqlite:///"):]
    started = time.perf_counter()
    build(path, team.id, CONTACTS)
    built = time.perf_counter() - started
    low = Contact.select(Contact.id).where(Contact.team == team).order_by(Contact.id).limit(1).scalar()
    rnd = random.Random(7)
    ids = [low + rnd.randrange(CONTACTS) for _ in range(READS)]
    print(f"\n\nAPI on SQLite, {CONTACTS:,} contacts (built in {built:.1f} s), load {os.getloadavg()[0]:.2f}")
    contact_reads(app, api, ids)

    bulk_upserts(api)


@postgres_only("the SQLite figures come from test_api_at_a_million_contacts, which writes the SQLite file itself")
def test_get_contact_on_postgres(app, admin):
    """The GET half on PostgreSQL, with the per-key counts in Redis when LOFT_TEST_QUEUE_URL is set (as with
    LOFT_QUEUE_URL=redis://). Run with LOFT_TEST_DATABASE_URL (tests/stack_support.py) and `-k get_contact`."""
    app.config["API_RATE_PER_MINUTE"] = 10_000_000
    with app.app_context():
        team = Team.get(Team.name == "Acme")
        key, raw = keys.create_key(team, name="bench", role="admin")
    db.close()
    started = time.perf_counter()
    build_postgres(app.config["DATABASE_URL"], team.id, CONTACTS)
    built = time.perf_counter() - started
    stack = "PostgreSQL"
    if stack_support.ON_REDIS:
        app.config["QUEUE_URL"] = stack_support.redis_queue_url()
        stack += " + Redis"
    with app.app_context():
        low = Contact.select(Contact.id).where(Contact.team == team).order_by(Contact.id).limit(1).scalar()
    db.close()
    rnd = random.Random(7)
    ids = [low + rnd.randrange(CONTACTS) for _ in range(READS)]
    print(f"\n\nAPI on {stack}, {CONTACTS:,} contacts (built in {built:.1f} s), load {os.getloadavg()[0]:.2f}")
    contact_reads(app, ApiClient(app, raw, key), ids)


@postgres_only("the SQLite figures come from test_api_at_a_million_contacts, which writes the SQLite file itself")
def test_bulk_upsert_on_postgres(app, admin):
    """The bulk half on PostgreSQL: CONTACTS contacts made by the server (generate_series), then
    bulk_upserts. Run with LOFT_TEST_DATABASE_URL (tests/stack_support.py) and `-k postgres`."""
    with app.app_context():
        team = Team.get(Team.name == "Acme")
        key, raw = keys.create_key(team, name="bench", role="admin")
        db.execute_sql(
            "INSERT INTO contact (team_id, email, domain, name, status, attributes, source, consent_source, "
            "consent_ip, consent_text, created_at, updated_at) "
            "SELECT %s, 'person' || i || '@example.com', 'example.com', 'Person ' || i, 'active', "
            "CASE WHEN i %% 4 = 0 THEN '{\"plan\": \"pro\"}'::jsonb ELSE '{}'::jsonb END, 'import', '', '', '', "
            "timestamp '2026-01-01 00:00:00', timestamp '2026-01-01 00:00:00' FROM generate_series(1, %s) AS i",
            (team.id, CONTACTS))
        db.execute_sql("ANALYZE contact")
        db.close()
    app.config["API_RATE_PER_MINUTE"] = 10_000_000
    print(f"\n\nAPI on PostgreSQL, {CONTACTS:,} contacts, load {os.getloadavg()[0]:.2f}")
    bulk_upserts(ApiClient(app, raw, key))


def bulk_upserts(api, runs=5):
    """POST /api/v1/contacts/bulk, BULK contacts a request: half of them new addresses, half existing
    contacts (renamed), each with a text and a number field, one in ten with a tag, all subscribed to a
    list. The body is encoded before the clock starts (a client's work, not the server's). The
    collector's startup objects are frozen first, as wsgi.py does in every Loft process."""
    gc.freeze()
    assert api.post("/api/v1/fields", json={"label": "Plan"}).status_code == 201
    assert api.post("/api/v1/fields", json={"label": "Score", "type": "number"}).status_code == 201
    news = api.post("/api/v1/lists", json={"name": "Bulk news"}).get_json()
    rates = []
    for run in range(runs):
        contacts = [{"email": f"person{(run * BULK + i) % CONTACTS + 1}@example.com" if i % 2 else f"bulk{run}-{i}@example.net",
                     "name": f"Bulk {i}", "fields": {"plan": "pro" if i % 3 else "free", "score": i},
                     "tags": ["api"] if i % 10 == 0 else []} for i in range(BULK)]
        data = json.dumps({"contacts": contacts, "lists": [news["id"]]})
        start, cpu = time.perf_counter(), time.process_time()
        response = api.call("POST", "/api/v1/contacts/bulk", data=data, content_type="application/json")
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        assert response.status_code == 202, response.get_data(as_text=True)
        job = api.get(f"/api/v1/jobs/{response.get_json()['id']}").get_json()
        assert job["status"] == "done" and job["created"] == BULK // 2, job
        rates.append(BULK / elapsed)
        print(f"POST /api/v1/contacts/bulk, {BULK:,} contacts ({job['created']:,} new, {job['updated']:,} updated): "
              f"{elapsed:.3f} s ({cpu:.3f} s of CPU), {BULK / elapsed:,.0f} contacts/s, load {os.getloadavg()[0]:.2f}")
    print(f"Bulk upsert: median {statistics.median(rates):,.0f} contacts/s over {runs} requests")
