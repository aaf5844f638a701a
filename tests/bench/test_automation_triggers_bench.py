"""Benchmark: a CSV import of 100,000 new contacts onto a list that a live list_join automation starts from, against
the same import with no automation (issue 17: an import must not do one enter per row). Each chunk's subscribers
enter in one runs.enter_many per list after the chunk commits (app/imports/joins.py).

Run with `make bench` or:
    .venv/bin/python -m pytest -q -s tests/bench/test_automation_triggers_bench.py
LOFT_BENCH_TRIGGER_ROWS changes the size. The figures are printed; nothing asserts on time."""
import os
import time

from app.imports import importer
from app.imports import services
from app.models import Automation
from app.models import AutomationRun
from app.models import AutomationStep
from app.models import MailingList
from app.models import Team

ROWS = int(os.environ.get("LOFT_BENCH_TRIGGER_ROWS", "100000"))


def _import(app, tmp_path, name, with_automation):
    path = tmp_path / f"{name}.csv"
    with open(path, "w", encoding="utf-8") as out:
        out.write("email,name\n")
        out.writelines(f"{name}.{i}@example.com,Reader {i}\n" for i in range(ROWS))
    team = Team.create(name=name)
    news = MailingList.create(team=team, name="News")
    if with_automation:
        welcome = Automation.create(team=team, name="Welcome", state="live", goal={},
                                    trigger={"kind": "list_join", "list_id": news.id})
        step = AutomationStep.create(automation=welcome, kind="wait", config={"mode": "duration", "minutes": 60})
        welcome.first_step_id = step.id
        welcome.save()
    job = services.create_job(team, None, str(path), f"{name}.csv")
    job = services.configure(team, job, {"0": "email", "1": "name"}, [news.id], "add", services.describe(job).columns)
    wall = time.perf_counter()
    job = importer.run_import(job.id)
    wall = time.perf_counter() - wall
    assert job.status == "done" and job.created == ROWS, job.error
    return wall, team


def test_import_onto_a_list_with_a_welcome_automation(app, tmp_path):
    with app.app_context():
        app.config["IMPORT_DIR"] = str(tmp_path / "imports")
        plain, _ = _import(app, tmp_path, "plain", False)
        started, team = _import(app, tmp_path, "welcome", True)
        entered = AutomationRun.select().where(AutomationRun.team == team).count()
    assert entered == ROWS
    print(f"\n[triggers] import of {ROWS:,} rows: {plain:.1f} s without an automation, {started:.1f} s with a live "
          f"list_join automation entering every row ({entered:,} runs; {ROWS / started:,.0f} rows/s, "
          f"+{(started - plain) / plain * 100:.0f} %), on {os.cpu_count()} cores")
