"""Benchmark: CSV contact import of a generated 1,000,000-row file into SQLite (issue 3; target ≥ 50,000 rows/s).

Run with `make bench` or:
    .venv/bin/python -m pytest -q -s tests/bench/test_import_bench.py

The file has an email address and three fields (name, city as a text field,
age as a number field), one contact per row, all addresses unique. The
addresses are scattered the way real ones are: a random part in each local
part, so consecutive rows land far apart in the (team, email) index, and
domains weighted like a real list (a few big providers, a long tail). It is
imported through the same service the huey task and the CLI call
(importer.run_import), into a real migrated SQLite file in WAL mode, with
every contact added to one list. The time covers the whole import: the
structure pass, parsing, address checks, contacts, subscriptions, the
rejects file and the progress counters; not the file generation.

LOFT_BENCH_IMPORT_ROWS changes the size (for a quick look: 100000).
"""
import os
import random
import time

from app.imports import importer
from app.imports import services
from app.models import Contact
from app.models import CustomField
from app.models import ImportJob
from app.models import MailingList
from app.models import Subscription
from app.models import Team

ROWS = int(os.environ.get("LOFT_BENCH_IMPORT_ROWS", "1000000"))
DOMAINS = (["gmail.com"] * 30 + ["yahoo.com"] * 10 + ["hotmail.com"] * 8 + ["outlook.com"] * 6 + ["icloud.com"] * 4
           + ["aol.com"] * 2 + ["gmx.de", "web.de", "orange.fr", "free.fr", "mail.ru", "qq.com", "proton.me",
                                "comcast.net"] + [f"company{k}.example.com" for k in range(32)])
FIRST = ["ann", "bob", "chloe", "dan", "eve", "femi", "gus", "hana", "ivan", "jo", "kai", "lena", "mo", "nia"]
CITIES = ["Paris", "Lagos", "Osaka", "Lima", "Oslo", "Pune", "Quito", "Rome", "Seoul", "Tunis"]


def generate(path, rows):
    """A CSV of `rows` unique contacts; about 1.5 s per million rows."""
    rnd = random.Random(2026)
    bits = rnd.getrandbits
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("email,name,city,age\n")
        for start in range(0, rows, 100_000):
            out.writelines(
                f"{FIRST[i % 14]}.{bits(24):06x}{i}@{DOMAINS[i % 100]},{FIRST[i % 14].title()} {i},"
                f"{CITIES[i % 10]},{18 + i % 70}\n"
                for i in range(start, min(rows, start + 100_000)))


def test_import_a_million_rows(app, tmp_path):
    path = tmp_path / "contacts.csv"
    started = time.perf_counter()
    generate(path, ROWS)
    generated = time.perf_counter() - started
    size_mb = path.stat().st_size / 1e6

    with app.app_context():
        app.config["IMPORT_DIR"] = str(tmp_path / "imports")
        team = Team.create(name="Bench")
        news = MailingList.create(team=team, name="News")
        CustomField.create(team=team, key="city", label="City", type="text")
        CustomField.create(team=team, key="age", label="Age", type="number")
        job = services.create_job(team, None, str(path), "contacts.csv")
        job = services.configure(team, job, {"0": "email", "1": "name", "2": "field:city", "3": "field:age"},
                                 [news.id], "add", services.describe(job).columns)

        load_before = os.getloadavg()[0]
        wall, cpu = time.perf_counter(), time.process_time()
        job = importer.run_import(job.id)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu

        assert job.status == "done", job.error
        assert (job.total_rows, job.created, job.rejected, job.duplicates) == (ROWS, ROWS, 0, 0)
        assert Contact.select().where(Contact.team == team).count() == ROWS
        assert Subscription.select().where(Subscription.list == news).count() == ROWS
        db_mb = os.path.getsize(app.config["DATABASE_URL"][len("sqlite:///"):]) / 1e6
        load = os.getloadavg()[0]
        assert ImportJob.get_by_id(job.id).processed_rows == ROWS

    print(f"\n[import] {ROWS:,} rows, {size_mb:.1f} MB CSV (generated in {generated:.1f} s), SQLite file {db_mb:.0f} MB")
    print(f"[import] {wall:.1f} s wall = {ROWS / wall:,.0f} rows/s; {cpu:.1f} s CPU = {ROWS / cpu:,.0f} rows per CPU-second;"
          f" chunks of {importer.chunk_rows(ROWS):,} rows; load average {load_before:.1f} before, {load:.1f} after, on {os.cpu_count()} cores")
