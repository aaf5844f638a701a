"""Benchmark: the automation scheduler's claim at 1,000,000 waiting runs, 10,000 of them due (goal: ≤ 200 ms to
claim the due ones).

Run: .venv/bin/python -m pytest -q -s tests/bench/test_automation_tick_bench.py
On PostgreSQL: the same with LOFT_TEST_DATABASE_URL set (`set -a; . /tmp/loft-svc/env; set +a` here, or
.ci/services.sh), since the `app` fixture then makes the test's database there.

The runs are written by one INSERT ... SELECT inside the database (a recursive CTE on SQLite, generate_series on
PostgreSQL), spread over 20 live automations and one paused one; 990,000 wait up to 30 days ahead, 10,000 are due.
Then ANALYZE, as after any big change. The claim measured is scheduler.claim(): the one UPDATE that leases the due
runs of live automations and returns their ids, (a) all 10,000 in one claim and (b) in ten claims of 1,000, the
minute task's limit. Between repetitions the leases are cleared. LOFT_BENCH_RUNS sets the size. Nothing asserts
on time; the asserts check the claims took exactly the due runs.
"""
import datetime
import os
import statistics
import time

from app.automations import scheduler
from app.db import db
from app.db import is_sqlite
from app.models import Automation
from app.models import AutomationRun
from app.models import Team

RUNS = int(os.environ.get("LOFT_BENCH_RUNS", "1000000"))
DUE = 10_000
AUTOMATIONS = 20
NOW = datetime.datetime(2026, 3, 2, 10, 0)
REPEATS = 5


def build(team_id, automation_ids, paused_id):
    """RUNS waiting runs: the first DUE due an hour ago, the rest due within 30 days; every 50th run of the rest
    belongs to the paused automation (never claimed)."""
    ids = ",".join(str(i) for i in automation_ids)
    count = len(automation_ids)
    if is_sqlite():
        db.execute_sql(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO automation_run (automation_id, team_id, contact_id, entry, state, step_id, next_at, "
            "waiting_for, data, claimed_until, exit_reason, entered_at, ended_at) "
            f"SELECT CASE WHEN i > ? AND i % 50 = 0 THEN ? ELSE json_extract('[{ids}]', '$[' || (i % ?) || ']') END, "
            "?, NULL, i, 'waiting', NULL, "
            "CASE WHEN i <= ? THEN datetime(?, '-1 hours') ELSE datetime(?, '+' || (1 + i % 43200) || ' minutes') END, "
            "'', '{}', NULL, '', ?, NULL FROM n",
            (RUNS, DUE, paused_id, count, team_id, DUE, NOW, NOW, NOW))
        db.execute_sql("ANALYZE")
    else:
        db.execute_sql(
            "INSERT INTO automation_run (automation_id, team_id, contact_id, entry, state, step_id, next_at, "
            "waiting_for, data, claimed_until, exit_reason, entered_at, ended_at) "
            f"SELECT CASE WHEN i > %s AND i %% 50 = 0 THEN %s ELSE (ARRAY[{ids}])[1 + i %% %s] END, "
            "%s, NULL, i, 'waiting', NULL, "
            "CASE WHEN i <= %s THEN %s::timestamp - interval '1 hour' "
            "ELSE %s::timestamp + (1 + i %% 43200) * interval '1 minute' END, "
            "'', '{}', NULL, '', %s, NULL FROM generate_series(1, %s) AS i",
            (DUE, paused_id, count, team_id, DUE, NOW, NOW, NOW, RUNS))
        db.execute_sql("ANALYZE automation_run")


def unclaim():
    AutomationRun.update(claimed_until=None).where(AutomationRun.claimed_until.is_null(False)).execute()


def timed(batches, limit):
    started = time.perf_counter()
    claimed = sum(len(scheduler.claim(NOW, limit)) for _ in range(batches))
    return (time.perf_counter() - started) * 1000, claimed


def test_claim_at_a_million_runs(ctx):
    team = Team.create(name="Bench", time_zone="Europe/Berlin")
    automations = [Automation.create(team=team, name=f"A{i}", state="live", trigger={"kind": "manual"}, goal={})
                   for i in range(AUTOMATIONS)]
    paused = Automation.create(team=team, name="Paused", state="paused", trigger={"kind": "manual"}, goal={})
    started = time.perf_counter()
    with db.atomic():
        build(team.id, [a.id for a in automations], paused.id)
    print(f"\n{'SQLite' if is_sqlite() else 'PostgreSQL'}: {RUNS:,} runs written in "
          f"{time.perf_counter() - started:.1f} s")
    assert AutomationRun.select().count() == RUNS
    if os.environ.get("LOFT_BENCH_EXPLAIN"):
        explain()
    for label, batches, limit in (("one claim of 10,000", 1, DUE), ("ten claims of 1,000", DUE // 1000, 1000)):
        figures = []
        for _ in range(REPEATS):
            unclaim()
            elapsed, claimed = timed(batches, limit)
            assert claimed == DUE  # exactly the due runs of live automations, nothing else
            assert scheduler.claim(NOW, limit) == []  # and nothing is left to claim
            figures.append(elapsed)
        print(f"{label}: median {statistics.median(figures):.1f} ms, min {min(figures):.1f} ms, "
              f"max {max(figures):.1f} ms ({REPEATS} runs)")



def explain():
    """LOFT_BENCH_EXPLAIN=1: print the claim's plan (on PostgreSQL run for real, in a transaction rolled back)."""
    sql, params = scheduler.claim_query(NOW, 1000).sql()
    prefix = "EXPLAIN QUERY PLAN " if is_sqlite() else "EXPLAIN (ANALYZE, BUFFERS) "
    with db.atomic() as transaction:
        for row in db.execute_sql(prefix + sql, params).fetchall():
            print(*row)
        transaction.rollback()
