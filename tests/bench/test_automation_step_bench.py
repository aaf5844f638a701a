"""Benchmark: the engine's own cost of a welcome burst, without sending. N contacts enter a live automation whose one
step is an email (From a verified domain) as production enters them (runs.enter_many with scheduler.start_entered,
what app/automations/triggers.py passes): each chunk's runs have their message queued (hidden campaign Send, the
visit holding it) and end as they enter. Printed: the CPU seconds per run this process used, and the wall time.
This is what the welcome bench (test_automation_welcome_bench.py) pays on top of a campaign's sending, on the same
two cores. LOFT_BENCH_STEP_TICKS=1 enters them without the first step, then runs `scheduler.tick` in this process
until every run has queued its message and ended (the path of runs a tick moves: a first step that is not an
email, a wait that ended).

Run with `make bench` or
    .venv/bin/python -m pytest -q -s tests/bench/test_automation_step_bench.py
Environment: LOFT_BENCH_STEP_RUNS (default 50000); LOFT_BENCH_STATEMENTS=1 also prints the CPU spent in each kind
of statement (bench_support.statement_times); LOFT_BENCH_STACK=postgres or LOFT_BENCH_DATABASE_URL +
LOFT_BENCH_QUEUE_URL as in tests/bench/bench_support.py. The figures are printed; nothing asserts on time."""
import contextlib
import datetime
import os
import time

import pytest

from app.automations import runs
from app.automations import scheduler
from app.models import Automation
from app.models import AutomationStep
from app.models import AutomationVisit
from app.models import MailingList
from app.models import SenderDomain
from app.models import Team
from app.senders import domains
from tests.bench.bench_support import bench_application
from tests.bench.bench_support import bench_servers
from tests.bench.bench_support import fill_list
from tests.bench.bench_support import statement_times

RUNS = int(os.environ.get("LOFT_BENCH_STEP_RUNS", "50000"))
STATEMENTS = os.environ.get("LOFT_BENCH_STATEMENTS", "") == "1"
TICKS = os.environ.get("LOFT_BENCH_STEP_TICKS", "") == "1"


@pytest.fixture
def app(tmp_path):
    with bench_servers() as servers, \
            bench_application(servers, tmp_path, 2, f"loft_step_bench_{os.getpid()}") as (made, _env, stack):
        with made.app_context():
            yield stack


def test_ticks_of_a_welcome_burst(app):
    team = Team.create(name="Bench", postal_address="1 Main Street, Springfield", default_from_name="Acme",
                       default_from_email="news@acme.example")
    domain = domains.add_domain(team, "acme.example")
    SenderDomain.update(verified_at=datetime.datetime.utcnow()).where(SenderDomain.id == domain.id).execute()
    news = MailingList.create(team=team, name="Newsletter")
    ids = fill_list(team.id, news.id, RUNS)
    automation = Automation.create(team=team, name="Welcome", state="live", trigger={"kind": "manual"}, goal={},
                                   from_name="Acme", from_email="news@acme.example")
    step = AutomationStep.create(automation=automation, kind="email", config={
        "subject": "Welcome {{ contact.name }}", "preheader": "", "kind": "html", "body": "<p>Welcome</p>",
        "template_id": None, "from_name": "", "from_email": ""})
    automation.first_step_id = step.id
    automation.save()

    cpu, wall = time.process_time(), time.perf_counter()
    with statement_times() if STATEMENTS else contextlib.nullcontext({}) as entering_statements:
        assert runs.enter_many(automation, ids, start=None if TICKS else scheduler.start_entered) == RUNS
    entering_cpu, entering = time.process_time() - cpu, time.perf_counter() - wall
    cpu, wall, moved = time.process_time(), time.perf_counter(), 0
    with statement_times() if STATEMENTS else contextlib.nullcontext({}) as statements:
        while True:
            claimed = scheduler.tick(limit=1000)
            moved += claimed
            if claimed < 1000:
                break
    ticking_cpu, ticking = time.process_time() - cpu, time.perf_counter() - wall
    assert moved == (RUNS if TICKS else 0)
    assert AutomationVisit.select().where((AutomationVisit.step == step.id)
                                          & AutomationVisit.send_id.is_null(False)).count() == RUNS

    print(f"\n{app}: {RUNS:,} runs at one email step")
    print(f"enter{'' if TICKS else ', the email step done as they enter'}: {entering:.2f} s, "
          f"{entering_cpu / RUNS * 1e6:.0f} us CPU a run")
    print_statements(entering_statements, 3 if TICKS else 10)
    if TICKS:
        print(f"ticks until every message was queued: {ticking:.2f} s = {RUNS / ticking:,.0f} runs/s, "
              f"{ticking_cpu / RUNS * 1e6:.0f} us CPU a run (this process; the database's own work included on "
              f"SQLite)")
        print_statements(statements, 8)


def print_statements(statements, most):
    """The kinds of statement that took the most CPU (LOFT_BENCH_STATEMENTS=1), per run."""
    for statement, (times, seconds) in sorted(statements.items(), key=lambda item: -item[1][1])[:most]:
        print(f"  {seconds / RUNS * 1e6:5.1f} us a run, {times:5,} times: {statement}")
