"""The automation engine (app/automations/scheduler.py, steps.py, app/clock.py, tasks/automations.py): runs
claimed with a lease, each step done once through the visit ledger, waits across DST, branches, pauses, removed
steps, concurrent ticks and crashes. Real SQLite/PostgreSQL databases, huey tasks that really run, time moved
through the clock file."""
import datetime
import threading

import pytest

from app import clock
from app.automations import runs
from app.automations import scheduler
from app.automations import steps
from app.db import db
from app.models import Automation
from app.models import AutomationRun
from app.models import AutomationStep
from app.models import AutomationVisit
from app.models import Contact
from app.models import CustomField
from app.models import MailingList
from app.models import Segment
from app.models import Subscription
from app.models import Team

T0 = datetime.datetime(2026, 3, 2, 10, 0)  # a Monday, UTC


@pytest.fixture
def ctx(app, tmp_path):
    app.config["CLOCK_FILE"] = str(tmp_path / "clock.txt")
    with app.app_context():
        clock.set_time(app.config["CLOCK_FILE"], T0)
        yield app


@pytest.fixture
def team(ctx):
    return Team.create(name="Acme", time_zone="Europe/Berlin", postal_address="1 Main Street")


@pytest.fixture
def contact(team):
    return Contact.create(team=team, email="ada@example.com", domain="example.com", name="Ada", status="active")


def build(team, *specs, state="live", goal=None):
    """An automation whose steps follow one another: specs are (kind, config) or (kind, config, yes, no) where
    yes/no are indexes into specs (a condition's branches). Returns (automation, [steps])."""
    automation = Automation.create(team=team, name="Welcome", state=state, trigger={"kind": "manual"},
                                   goal=goal or {})
    made = [AutomationStep.create(automation=automation, kind=spec[0], config=spec[1]) for spec in specs]
    for index, (step, spec) in enumerate(zip(made, specs)):
        if len(spec) == 4:
            step.yes_id = made[spec[2]].id if spec[2] is not None else None
            step.no_id = made[spec[3]].id if spec[3] is not None else None
        elif len(spec) == 3:
            step.next_id = made[spec[2]].id if spec[2] is not None else None
        elif index + 1 < len(made):
            step.next_id = made[index + 1].id
        step.save()
    automation.first_step_id = made[0].id if made else None
    automation.save()
    return automation, made


def start(automation, contact, now=T0):
    run = runs.enter(automation, contact, {}, now)
    assert run is not None
    return run


def reload(run):
    return AutomationRun.get_by_id(run.id)


def outcomes(run):
    return {v.step_id: v.outcome for v in AutomationVisit.select().where(AutomationVisit.run == run.id)}


def test_duration_wait_then_exit(team, contact):
    automation, (wait, done) = build(team, ("wait", {"mode": "duration", "minutes": 90}), ("exit", {}))
    run = start(automation, contact)
    assert scheduler.tick(T0) == 1
    run = reload(run)
    assert (run.state, run.step_id, run.next_at, run.claimed_until) == ("waiting", wait.id, T0 + datetime.timedelta(minutes=90), None)
    assert scheduler.tick(T0 + datetime.timedelta(minutes=89)) == 0  # not due yet
    assert scheduler.tick(T0 + datetime.timedelta(minutes=90)) == 1
    run = reload(run)
    assert (run.state, run.exit_reason) == ("done", "exit")
    assert outcomes(run) == {wait.id: "waited", done.id: "exit"}
