"""Benchmark: the suppression list and the public sign-up form at scale (issue 3, consent).

Run with `make bench` or:
    .venv/bin/python -m pytest -q -s tests/bench/test_consent_bench.py

A real, migrated SQLite file gets LOFT_BENCH_CONSENT_CONTACTS contacts
(default 200,000; a quarter at one domain) written with executemany. Then,
through the Flask test client, signed in as the team's admin:

* a 100,000-line suppression import (half the lines are existing contacts),
* suppressing the big domain (50,000 active contacts marked in one go),
* the suppression page (first and a deep page) with 100,000+ entries,
* single opt-in sign-ups through the public form, and the preference center.

Times are whole requests (routing, session, queries, template).
"""
import io
import os
import sqlite3
import statistics
import time

from app.consent import preferences
from app.models import Contact
from app.models import MailingList
from app.models import Suppression
from app.models import Team
from tests.conftest import soup

CONTACTS = int(os.environ.get("LOFT_BENCH_CONSENT_CONTACTS", "200000"))
IMPORT_LINES = 100_000
ROUNDS = 25


def build(path, team_id, count):
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA synchronous=OFF")
    sql = ("INSERT INTO contact (team_id, email, domain, name, status, attributes, source, consent_source, "
           "consent_ip, consent_text, created_at, updated_at) VALUES (?, ?, ?, '', 'active', '{}', 'import', '', '', '', "
           "'2026-01-01 00:00:00', '2026-01-01 00:00:00')")

    def rows():
        for i in range(count):
            domain = "big.example" if i % 4 == 0 else f"d{i % 50}.example"
            yield team_id, f"user{i}@{domain}", domain

    with connection:
        connection.executemany(sql, rows())
    connection.close()


def timed(function, rounds=ROUNDS, warmup=3):
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), max(samples)


def test_consent_at_scale(app, web, admin):
    team = Team.get(Team.name == "Acme")
    database = app.config["DATABASE_URL"].removeprefix("sqlite:///")
    started = time.perf_counter()
    build(database, team.id, CONTACTS)
    print(f"\n{CONTACTS:,} contacts written in {time.perf_counter() - started:.1f} s")
    results = []

    # 1. Import: half existing contacts (not at the big domain), half new addresses.
    lines = ["email"]
    lines += [f"user{i}@d{i % 50}.example" for i in range(1, 2 * IMPORT_LINES, 4)][:IMPORT_LINES // 2]
    lines += [f"stranger{i}@elsewhere.example" for i in range(IMPORT_LINES - len(lines) + 1)]
    data = ("\n".join(lines) + "\n").encode()
    start = time.perf_counter()
    response = web.post("/contacts/suppression/import", {"file": (io.BytesIO(data), "big.csv")},
                        content_type="multipart/form-data")
    seconds = time.perf_counter() - start
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    summary = " ".join(soup(response).select_one("#import-result").text.split())
    marked = Contact.select().where((Contact.team == team) & (Contact.status == "suppressed")).count()
    results.append((f"import {IMPORT_LINES:,} lines ({marked:,} contacts marked)", seconds * 1000, None))
    print(f"import: {seconds:.2f} s, {IMPORT_LINES / seconds:,.0f} lines/s; {summary}")

    # 2. A domain with a quarter of the contacts.
    start = time.perf_counter()
    response = web.post("/contacts/suppression/add", {"value": "big.example"}, htmx=True)
    seconds = time.perf_counter() - start
    assert response.status_code == 200
    big = Contact.select().where((Contact.team == team) & (Contact.domain == "big.example")
                                 & (Contact.status == "suppressed")).count()
    assert big == (CONTACTS + 3) // 4
    results.append((f"suppress a domain ({big:,} contacts marked)", seconds * 1000, None))

    # 3. The page, first and deep.
    entries = Suppression.select().where(Suppression.team == team).count()
    deep = Suppression.select(Suppression.id).where(Suppression.team == team).order_by(Suppression.id).limit(1)
    deep_id = deep.scalar() + 100
    median, worst = timed(lambda: web.get("/contacts/suppression"))
    results.append((f"suppression page, first ({entries:,} entries)", median, worst))
    median, worst = timed(lambda: web.get(f"/contacts/suppression?before={deep_id}"))
    results.append(("suppression page, deep", median, worst))
    median, worst = timed(lambda: web.post("/contacts/suppression/check", {"value": "user5@d5.example"}, htmx=True))
    results.append(("check an address", median, worst))

    # 4. Public sign-ups (single opt-in, so no SMTP in the loop), each from its own IP.
    app.config["SIGNUP_MIN_SECONDS"] = 0
    open_list = MailingList.create(team=team, visibility="public", name="Open", double_opt_in=False)
    public = app.test_client()
    counter = iter(range(10_000))

    def sign_up():
        n = next(counter)
        response = public.post(f"/f/{open_list.public_id}", data={"email": f"fresh{n}@new.example"},
                               environ_base={"REMOTE_ADDR": f"10.0.{n // 250}.{n % 250}"})
        assert response.status_code == 200

    median, worst = timed(sign_up)
    results.append(("public sign-up (single opt-in, new contact)", median, worst))
    contact = Contact.get(Contact.email == "fresh0@new.example")
    with app.app_context():
        path = preferences.preference_path(contact)
    median, worst = timed(lambda: public.get(path))
    results.append(("preference center page", median, worst))

    print(f"\n| case ({CONTACTS:,} contacts) | median ms | max ms |\n|---|---:|---:|")
    for name, median, worst in results:
        print(f"| {name} | {median:.1f} | {'' if worst is None else f'{worst:.1f}'} |")
