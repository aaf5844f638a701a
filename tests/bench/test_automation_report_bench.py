"""Benchmark: the automation builder's per-step counts and the report page's numbers at 100,000 runs.

Run: .venv/bin/python -m pytest -q -s tests/bench/test_automation_report_bench.py
On PostgreSQL: the same with LOFT_TEST_DATABASE_URL set (`set -a; . /tmp/loft-svc/env; set +a` here), since the
`app` fixture then makes the test's database there.

One automation of 10 steps (3 emails with their hidden campaigns), LOFT_BENCH_RUNS runs (default 100,000) spread over
the steps and 30 days, one visit per run for each of the first three steps (300,000 visits) and 60,000 open and
click events of the emails' campaigns, then ANALYZE. Measured: report.step_counts (the builder's counts: a few
GROUP BY queries, however many steps), report.run_totals and report.entries_per_day (the report page), the median
of 5. Nothing asserts on time; the asserts check the counts.
"""
import datetime
import os
import statistics
import time

from app.automations import flow
from app.automations import report
from app.db import db
from app.db import is_sqlite
from app.models import Automation
from app.models import AutomationRun
from app.models import AutomationStep
from app.models import AutomationVisit
from app.models import Campaign
from app.models import Contact
from app.models import Event
from app.models import Team

RUNS = int(os.environ.get("LOFT_BENCH_RUNS", "100000"))
NOW = datetime.datetime(2026, 3, 2, 10, 0)
REPEATS = 5
BATCH = 2000  # rows per INSERT: PostgreSQL takes at most 65,535 parameters a statement


def _insert(model, rows):
    for start in range(0, len(rows), BATCH):
        with db.atomic():
            model.insert_many(rows[start:start + BATCH]).execute()


def _median_ms(work):
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def test_counts_at_scale(ctx):
    team = Team.create(name="Bench")
    automation = flow.create_automation(team, None, "Bench series", starter="welcome")
    steps = flow.ordered_steps(automation)
    last = steps[-1]
    for kind in ("wait", "condition"):
        last = flow.add_step(automation, kind, after=last.id)
    for kind in ("email", "wait", "set_field", "webhook", "exit"):
        last = flow.add_step(automation, kind, branch=("yes", last.id)) if last.kind == "condition" else \
            flow.add_step(automation, kind, after=last.id)
    automation = Automation.get_by_id(automation.id)
    steps = flow.ordered_steps(automation)
    emails = [s for s in steps if s.kind == "email"]
    for step in emails:
        campaign = Campaign.create(team=team, name=f"hidden {step.id}", state="sending")
        AutomationStep.update(campaign=campaign.id).where(AutomationStep.id == step.id).execute()
    contacts = 20_000
    _insert(Contact, [{"team": team.id, "email": f"c{i}@example.com", "domain": "example.com"}
                      for i in range(contacts)])
    first_contact = Contact.select(Contact.id).where(Contact.team == team).order_by(Contact.id).first().id
    states = ("waiting", "done", "exited")
    _insert(AutomationRun, [{"automation": automation.id, "team": team.id, "contact": first_contact + i % contacts,
                             "entry": 1 + i // contacts, "state": states[i % 3], "step_id": steps[i % len(steps)].id,
                             "exit_reason": "unsubscribed" if i % 3 == 2 else "", "data": {},
                             "entered_at": NOW - datetime.timedelta(minutes=i % (30 * 24 * 60))}
                            for i in range(RUNS)])
    run_ids = [r.id for r in AutomationRun.select(AutomationRun.id).where(AutomationRun.automation == automation.id)]
    _insert(AutomationVisit, [{"run": run_id, "step": step.id, "outcome": "queued" if step.kind == "email" else "done",
                               "entered_at": NOW, "done_at": NOW} for step in steps[:3] for run_id in run_ids])
    campaign_ids = [AutomationStep.get_by_id(s.id).campaign_id for s in emails]
    _insert(Event, [{"team": team.id, "contact": first_contact + i % contacts, "campaign_id": campaign_ids[i % 3],
                     "type": "opened" if i % 2 else "clicked", "at": NOW, "data": {}} for i in range(60_000)])
    db.execute_sql("ANALYZE")

    counts_ms, counts = _median_ms(lambda: report.step_counts(automation))
    totals_ms, totals = _median_ms(lambda: report.run_totals(automation))
    days_ms, (labels, values) = _median_ms(lambda: report.entries_per_day(automation, NOW.date()))
    assert counts[steps[0].id]["entered"] == RUNS and counts[steps[0].id]["sent"] == RUNS
    assert sum(c["waiting"] for c in counts.values()) == totals["waiting"]
    assert totals["total"] == RUNS and sum(values) <= RUNS and len(labels) == 30
    print(f"\n[{'sqlite' if is_sqlite() else 'postgresql'}] {RUNS:,} runs, {len(steps)} steps, "
          f"{RUNS * 3:,} visits, 60,000 events: step_counts {counts_ms:.0f} ms, run_totals {totals_ms:.0f} ms, "
          f"entries_per_day {days_ms:.0f} ms (median of {REPEATS})")
