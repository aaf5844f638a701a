"""Benchmark: tags at 1,000,000 contacts: segment counts with tag rules, the contact list filtered by a tag,
the Tags page's counts, bulk tagging of 100,000 contacts, and an import with and without a Tags column.

Run with `.venv/bin/python -m pytest -q -s tests/bench/test_tags_bench.py` (not part of the normal suite).
The contacts and tags are written straight through the SQLite connection (executemany); every measured
step goes through the app's own services. Figures are printed; nothing asserts on time.
LOFT_BENCH_TAG_IMPORT_ROWS changes the size of the two imports (default 100,000).
"""
import datetime
import os
import statistics
import time

import pytest

from app import create_app
from app.cli import migrate
from app.contacts import query
from app.contacts import tags
from app.db import db
from app.imports import importer
from app.imports import services as import_services
from app.models import Contact
from app.models import ImportJob
from app.models import MailingList
from app.models import Team
from app.segments import services as segments

CONTACTS = 1_000_000
RUNS = 7
IMPORT_ROWS = int(os.environ.get("LOFT_BENCH_TAG_IMPORT_ROWS", "100000"))


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    path = tmp_path_factory.mktemp("tagbench") / "loft.db"
    app = create_app({"TESTING": True, "SECRET_KEY": "bench", "DATABASE_URL": f"sqlite:///{path}"})
    with app.app_context():
        migrate()
        started = time.perf_counter()
        team = Team.create(name="Bench")
        newsletter = MailingList.create(team=team, name="Newsletter")
        customer, vip = tags.create_tag(team, "customer"), tags.create_tag(team, "vip")
        connection = db.connection()
        now = str(datetime.datetime(2026, 11, 1))
        with db.atomic():
            connection.executemany(
                "INSERT INTO contact (team_id, email, domain, name, status, attributes, source, created_at, "
                "updated_at, consent_source, consent_ip, consent_text) VALUES (?, ?, ?, '', ?, '{}', 'import', ?, ?, "
                "'', '', '')",
                ((team.id, f"user{i}@d{i % 2000}.example", f"d{i % 2000}.example",
                  "active" if i % 7 else "unsubscribed", now, now) for i in range(CONTACTS)))
        first = connection.execute("SELECT min(id) FROM contact WHERE team_id = ?", (team.id,)).fetchone()[0]
        with db.atomic():
            connection.executemany("INSERT INTO subscription (contact_id, list_id, status, created_at) "
                                   "VALUES (?, ?, 'subscribed', ?)",
                                   ((first + i, newsletter.id, now) for i in range(0, CONTACTS, 2)))
            connection.executemany("INSERT INTO contact_tag (contact_id, tag_id, created_at) VALUES (?, ?, ?)",
                                   ((first + i, customer.id, now) for i in range(0, CONTACTS, 3)))
            connection.executemany("INSERT INTO contact_tag (contact_id, tag_id, created_at) VALUES (?, ?, ?)",
                                   ((first + i, vip.id, now) for i in range(0, CONTACTS, 100)))
        print(f"\nbuilt {CONTACTS:,} contacts, 343,334 tags in {time.perf_counter() - started:.1f} s")
        yield dict(app=app, team=team, newsletter=newsletter, customer=customer, vip=vip, first=first)
    db.close()


def _median_ms(action):
    """(result, wall ms median, min, max, CPU ms median). The CPU time is this process's own work, so it
    shows what the step costs even when other jobs share the machine and stretch the wall clock."""
    action()  # warm the page cache
    times, cpu = [], []
    for _ in range(RUNS):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = action()
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return result, statistics.median(times), min(times), max(times), statistics.median(cpu)


def _report(label, action):
    result, median, low, high, cpu = _median_ms(action)
    shown = f"{result:,}" if isinstance(result, int) else type(result).__name__
    print(f"[tags] {label}: {shown}; median {median:.1f} ms (min {low:.1f}, max {high:.1f}, {RUNS} runs); "
          f"CPU median {cpu:.1f} ms")
    return result


def test_segment_counts_with_tag_rules(big):
    team, vip, customer, newsletter = big["team"], big["vip"], big["customer"], big["newsletter"]
    has_vip = {"field": "tag", "operator": "has_tag", "value": vip.id}
    shapes = {
        "has vip (10,000)": [has_vip],
        "has vip AND status active": [has_vip, {"field": "status", "operator": "is", "value": "active"}],
        "in Newsletter AND has vip": [{"field": "list", "operator": "in_list", "value": newsletter.id}, has_vip],
        "does not have customer": [{"field": "tag", "operator": "not_has_tag", "value": customer.id}],
        "has customer AND does not have vip": [{"field": "tag", "operator": "has_tag", "value": customer.id},
                                               {"field": "tag", "operator": "not_has_tag", "value": vip.id}],
    }
    with big["app"].app_context():
        counts = {label: _report(f"segment count, {label}",
                                 lambda rules=rules: segments.count_matching(team.id, {"op": "and", "rules": rules}))
                  for label, rules in shapes.items()}
    assert counts["has vip (10,000)"] == 10_000
    assert counts["in Newsletter AND has vip"] == 10_000  # every 100th is even
    assert counts["does not have customer"] == CONTACTS - 333_334


def test_contact_list_filtered_by_tag_and_the_tags_page(big):
    team, vip = big["team"], big["vip"]
    with big["app"].app_context():
        resolved = query.resolve_filter(team, query.ContactFilter(tag_id=vip.id))
        page = _report("contact list, first page filtered by vip", lambda: query.contact_page(team, resolved))
        assert len(page.contacts) == 50
        older = page.older
        _report("contact list, a later page filtered by vip", lambda: query.contact_page(team, resolved, before=older))
        both = query.resolve_filter(team, query.ContactFilter(tag_id=vip.id, list_id=big["newsletter"].id))
        _report("contact list, first page filtered by Newsletter and vip", lambda: query.contact_page(team, both))
        counted = _report("Tags page counts (2 tags, 343,334 taggings)", lambda: len(tags.tags_with_counts(team)))
        assert counted == 2


def test_bulk_tagging_a_hundred_thousand_contacts(big):
    team, first = big["team"], big["first"]
    with big["app"].app_context():
        tag = tags.create_tag(team, "fair")
        ids = list(range(first, first + 100_000))
        started, started_cpu = time.perf_counter(), time.process_time()
        added = 0
        for start in range(0, len(ids), query.BATCH_SIZE):  # the batches a bulk action's task takes
            with db.atomic():
                added += tags.tag_contacts(team, tag, ids[start:start + query.BATCH_SIZE])
        wall = time.perf_counter() - started
        print(f"[tags] bulk add tag to 100,000 contacts in batches of {query.BATCH_SIZE}: {wall:.2f} s wall, "
              f"{time.process_time() - started_cpu:.2f} s CPU")
        started, started_cpu = time.perf_counter(), time.process_time()
        removed = 0
        for start in range(0, len(ids), query.BATCH_SIZE):
            with db.atomic():
                removed += tags.untag_contacts(team, tag, ids[start:start + query.BATCH_SIZE])
        print(f"[tags] bulk remove tag from 100,000 contacts: {time.perf_counter() - started:.2f} s wall, "
              f"{time.process_time() - started_cpu:.2f} s CPU")
    assert added == removed == 100_000


def _import(tmp_path, name, with_tags):
    team = Team.create(name=name)
    path = tmp_path / f"{name}.csv"
    with open(path, "w", encoding="utf-8") as out:
        out.write("email,name" + (",tags" if with_tags else "") + "\n")
        out.writelines(f"p{i}.{name}@example.com,Person {i}"
                       + (f",customer;{'vip' if i % 100 == 0 else 'lead'}|group {i % 20}" if with_tags else "") + "\n"
                       for i in range(IMPORT_ROWS))
    job = import_services.create_job(team, None, str(path), path.name)
    mapping = {"0": "email", "1": "name"} | ({"2": "tags"} if with_tags else {})
    import_services.configure(team, ImportJob.get_by_id(job.id), mapping, [], "add", ["email", "name", "tags"][:len(mapping)])
    started, started_cpu = time.perf_counter(), time.process_time()
    job = importer.run_import(job.id)
    wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    assert (job.status, job.created) == ("done", IMPORT_ROWS), job.error
    return team, wall, cpu


def test_import_with_and_without_a_tags_column(app, tmp_path):
    """Two imports of each kind, alternating, into the test app's own database (not the million contacts)."""
    with app.app_context():
        for name, with_tags in (("plain", False), ("tagged", True), ("plain2", False), ("tagged2", True)):
            team, wall, cpu = _import(tmp_path, name, with_tags)
            shape = "with a Tags column (3 tags a row)" if with_tags else "without a Tags column"
            print(f"[tags] import {IMPORT_ROWS:,} rows {shape}: {wall:.2f} s wall = {IMPORT_ROWS / wall:,.0f} rows/s; "
                  f"{cpu:.2f} s CPU")
            if with_tags:
                assert Contact.select().where(Contact.team == team).count() == IMPORT_ROWS
                assert dict((t.name, n) for t, n in tags.tags_with_counts(team))["customer"] == IMPORT_ROWS
