"""The automation engine (app/automations/scheduler.py, steps.py, app/clock.py, tasks/automations.py): runs
claimed with a lease, each step done once through the visit ledger, waits across DST, branches, pauses, removed
steps, concurrent ticks and crashes. Real SQLite/PostgreSQL databases, huey tasks that really run, time moved
through the clock file."""
import datetime
import threading
import time

import pytest
from playhouse.migrations import Runner

from app import clock
from app.automations import flow
from app.automations import runs
from app.automations import scheduler
from app.automations import steps
from app.cli import MIGRATIONS_DIR
from app.db import db
from app.db import is_sqlite
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


def test_the_clock_file_moves_time_and_is_refused_outside_testing(ctx, tmp_path):
    path = ctx.config["CLOCK_FILE"]
    assert clock.now() == T0
    assert clock.advance(path, hours=3) == T0 + datetime.timedelta(hours=3)
    assert clock.now() == T0 + datetime.timedelta(hours=3)
    ctx.config["TESTING"] = False
    try:
        with pytest.raises(clock.ClockFileRefused):
            clock.now()
    finally:
        ctx.config["TESTING"] = True
    ctx.config["CLOCK_FILE"] = ""
    assert abs(clock.now() - clock.real_now()) < datetime.timedelta(seconds=5)


def test_a_huey_task_ticks_at_the_clock_files_time(ctx, team, contact):
    from tasks import automations as automation_tasks
    automation, (wait, done) = build(team, ("wait", {"mode": "duration", "minutes": 60}), ("exit", {}))
    run = start(automation, contact)
    automation_tasks.advance_soon()  # huey runs it (immediate mode) with now() from the clock file
    assert reload(run).next_at == T0 + datetime.timedelta(minutes=60)
    clock.advance(ctx.config["CLOCK_FILE"], minutes=60)
    automation_tasks.tick()
    assert reload(run).state == "done"


def test_a_run_entered_as_a_test_of_a_draft_is_not_claimed(team, contact):
    automation, _ = build(team, ("exit", {}), state="draft")
    run = runs.enter(automation, contact, {}, T0, test=True)
    assert scheduler.tick(T0) == 0
    assert reload(run).state == "waiting"


def test_until_wait_is_monday_9_in_berlin_across_both_dst_changes(team, contact):
    automation, (wait, done) = build(team, ("wait", {"mode": "until", "weekdays": [0], "time": "09:00",
                                                     "zone": "team"}), ("exit", {}))
    # Saturday 28 March 2026 (CET, UTC+1): the next Monday 09:00 is 30 March, after the change to CEST (UTC+2).
    saturday = datetime.datetime(2026, 3, 28, 12, 0)
    run = start(automation, contact, saturday)
    scheduler.tick(saturday)
    assert reload(run).next_at == datetime.datetime(2026, 3, 30, 7, 0)
    assert scheduler.tick(datetime.datetime(2026, 3, 30, 6, 59)) == 0
    assert scheduler.tick(datetime.datetime(2026, 3, 30, 7, 0)) == 1
    assert reload(run).state == "done"
    # And back: Saturday 24 October 2026 (CEST): Monday 26 October 09:00 is CET again, 08:00 UTC.
    other = Contact.create(team=team, email="bo@example.com", domain="example.com", status="active")
    october = datetime.datetime(2026, 10, 24, 12, 0)
    later = start(automation, other, october)
    scheduler.tick(october)
    assert reload(later).next_at == datetime.datetime(2026, 10, 26, 8, 0)


def test_until_wait_in_the_contacts_own_zone(team):
    ada = Contact.create(team=team, email="ny@example.com", domain="example.com", status="active",
                         attributes={"timezone": "America/New_York"})
    broken = Contact.create(team=team, email="xx@example.com", domain="example.com", status="active",
                            attributes={"timezone": "Mars/Olympus"})
    automation, _ = build(team, ("wait", {"mode": "until", "weekdays": [], "time": "09:00", "zone": "contact"}),
                          ("exit", {}))
    first, second = start(automation, ada), start(automation, broken)
    scheduler.tick(T0)  # Monday 2 March 10:00 UTC: 05:00 in New York (EST), 11:00 in Berlin
    assert reload(first).next_at == datetime.datetime(2026, 3, 2, 14, 0)  # 09:00 EST the same day
    assert reload(second).next_at == datetime.datetime(2026, 3, 3, 8, 0)  # an invalid zone: the team's


def _wake(run, now):
    """What triggers.record_event does for a run waiting for the event (the contract): next_at = now."""
    AutomationRun.update(next_at=now).where(AutomationRun.id == run.id).execute()


def test_wait_for_event_goes_on_at_the_event_or_at_the_timeout(team, contact):
    automation, (wait, yes) = build(team, ("wait", {"mode": "event", "event": "purchased", "timeout_minutes": 60}),
                                    ("exit", {}))
    other = Contact.create(team=team, email="bo@example.com", domain="example.com", status="active")
    by_event, by_timeout = start(automation, contact), start(automation, other)
    scheduler.tick(T0)
    assert reload(by_event).waiting_for == "purchased"
    assert reload(by_event).next_at == T0 + datetime.timedelta(minutes=60)
    _wake(by_event, T0 + datetime.timedelta(minutes=10))
    assert scheduler.tick(T0 + datetime.timedelta(minutes=10)) == 1
    by_event = reload(by_event)
    assert (by_event.state, by_event.data["last_wait"]) == ("done", "event")
    assert reload(by_timeout).state == "waiting"
    scheduler.tick(T0 + datetime.timedelta(minutes=60))
    by_timeout = reload(by_timeout)
    assert (by_timeout.state, by_timeout.data["last_wait"]) == ("done", "timeout")
    assert outcomes(by_event)[wait.id] == "event" and outcomes(by_timeout)[wait.id] == "timeout"


def test_field_and_segment_conditions_branch(team):
    ContactField_ = CustomField.create(team=team, key="plan", label="Plan")
    news = MailingList.create(team=team, name="News", double_opt_in=False)
    pro = MailingList.create(team=team, name="Pro", double_opt_in=False)
    vips = Segment.create(team=team, name="VIPs", rules={"op": "and", "rules": [
        {"field": "email", "operator": "ends_with", "value": "vip.example"}]})
    automation, made = build(
        team,
        ("condition", {"test": "field", "field": "plan", "op": "equals", "value": "Pro"}, 1, 3),  # 0
        ("add_to_list", {"list_id": pro.id}, 2),  # 1: yes
        ("set_field", {"field": "plan", "value": "Pro+"}, None),  # 2
        ("condition", {"test": "segment", "segment_id": vips.id}, 4, 5),  # 3: no
        ("add_to_list", {"list_id": news.id}, None),  # 4: a VIP
        ("remove_from_list", {"list_id": news.id}, None))  # 5: not a VIP
    assert ContactField_.key == "plan"
    paying = Contact.create(team=team, email="p@example.com", domain="example.com", status="active",
                            attributes={"plan": "pro"})
    vip = Contact.create(team=team, email="v@vip.example", domain="vip.example", status="active")
    plain = Contact.create(team=team, email="n@example.com", domain="example.com", status="active")
    Subscription.create(contact=plain, list=news, status="subscribed")
    run_paying, run_vip, run_plain = start(automation, paying), start(automation, vip), start(automation, plain)
    assert scheduler.tick(T0) == 3
    assert outcomes(run_paying) == {made[0].id: "yes", made[1].id: "done", made[2].id: "done"}
    assert Subscription.get(contact=paying, list=pro).status == "subscribed"
    assert Contact.get_by_id(paying.id).attributes["plan"] == "Pro+"
    assert outcomes(run_vip) == {made[0].id: "no", made[3].id: "yes", made[4].id: "done"}
    assert Subscription.get(contact=vip, list=news).status == "subscribed"
    assert outcomes(run_plain) == {made[0].id: "no", made[3].id: "no", made[5].id: "done"}
    assert not Subscription.select().where(Subscription.contact == plain).exists()
    assert {reload(r).state for r in (run_paying, run_vip, run_plain)} == {"done"}


def test_unknown_field_and_missing_list_are_skipped_not_raised(team, contact):
    automation, made = build(team, ("set_field", {"field": "nope", "value": "x"}), ("add_to_list", {"list_id": 999}))
    run = start(automation, contact)
    scheduler.tick(T0)
    assert outcomes(run) == {made[0].id: "skipped:no such field", made[1].id: "skipped:the list no longer exists"}
    assert reload(run).state == "done"


def test_webhook_step_posts_once_through_the_guard(ctx, team, contact, receiver):
    ctx.config["WEBHOOKS_ALLOW_PRIVATE"] = True  # the receiver is on loopback
    server = receiver(200)
    automation, (hook,) = build(team, ("webhook", {"url": server.url}))
    run = start(automation, contact)
    scheduler.tick(T0)
    assert len(server.requests) == 1
    request = server.requests[0]
    assert request["headers"]["X-Loft-Idempotency-Key"] == f"automation-run-{run.id}-step-{hook.id}"
    import json
    body = json.loads(request["body"])
    assert (body["contact"]["email"], body["step"]["id"], body["run"]["id"]) == ("ada@example.com", hook.id, run.id)
    assert outcomes(run) == {hook.id: "posted"}


def test_webhook_to_a_private_address_is_refused_without_posting(ctx, team, contact, receiver):
    ctx.config["WEBHOOKS_ALLOW_PRIVATE"] = False
    server = receiver(200)
    automation, (hook,) = build(team, ("webhook", {"url": server.url}))
    run = start(automation, contact)
    scheduler.tick(T0)
    assert server.requests == []
    assert outcomes(run) == {hook.id: "skipped:refused"}


def test_webhook_that_fails_is_retried_then_recorded_and_the_run_goes_on(ctx, team, contact, receiver):
    ctx.config["WEBHOOKS_ALLOW_PRIVATE"] = True
    server = receiver(500, 500, 500)
    automation, (hook, done) = build(team, ("webhook", {"url": server.url}), ("exit", {}))
    run = start(automation, contact)
    scheduler.tick(T0)
    assert reload(run).next_at == T0 + scheduler.RETRY_DELAY
    scheduler.tick(T0 + scheduler.RETRY_DELAY)
    scheduler.tick(T0 + scheduler.RETRY_DELAY * 3)
    assert len(server.requests) == 3
    assert outcomes(run) == {hook.id: "failed", done.id: "exit"}


def test_paused_automation_does_not_move_and_resumes_where_it_stood(team, contact):
    automation, (wait, done) = build(team, ("wait", {"mode": "duration", "minutes": 5}), ("exit", {}))
    run = start(automation, contact)
    scheduler.tick(T0)
    Automation.update(state="paused").where(Automation.id == automation.id).execute()
    assert scheduler.tick(T0 + datetime.timedelta(days=2)) == 0
    assert (reload(run).state, reload(run).step_id) == ("waiting", wait.id)
    Automation.update(state="live").where(Automation.id == automation.id).execute()
    assert scheduler.tick(T0 + datetime.timedelta(days=2)) == 1
    assert reload(run).state == "done" and outcomes(run) == {wait.id: "waited", done.id: "exit"}


def test_a_run_waiting_at_a_removed_step_goes_on_to_its_next(team, contact):
    news = MailingList.create(team=team, name="News", double_opt_in=False)
    automation, (wait, add, done) = build(team, ("wait", {"mode": "duration", "minutes": 60 * 24}),
                                          ("add_to_list", {"list_id": news.id}), ("exit", {}))
    run = start(automation, contact)
    scheduler.tick(T0)
    # The builder's removal: the step stays as a row, marked, and its next_id says where runs go. The next tick
    # wakes the runs waiting in it (the day's wait no longer exists) and they go on at once.
    flow.remove_step(Automation.get_by_id(automation.id), AutomationStep.get_by_id(wait.id), T0)
    assert scheduler.tick(T0 + datetime.timedelta(minutes=1)) == 1
    assert reload(run).state == "done"
    assert outcomes(run) == {wait.id: "", add.id: "done", done.id: "exit"}


def test_a_run_at_a_removed_condition_follows_its_yes_branch(team, contact):
    automation, made = build(
        team, ("condition", {"test": "field", "field": "email", "op": "contains", "value": "nobody"}, 1, 2),  # 0
        ("set_field", {"field": "plan", "value": "yes"}, None),  # 1: yes
        ("exit", {}, None))  # 2: no
    run = start(automation, contact)  # about to do the condition, but the automation is paused before it does
    Automation.update(state="paused").where(Automation.id == automation.id).execute()
    flow.remove_step(Automation.get_by_id(automation.id), AutomationStep.get_by_id(made[0].id), T0)
    Automation.update(state="live").where(Automation.id == automation.id).execute()
    scheduler.tick(T0 + datetime.timedelta(minutes=1))
    # The condition would have said "no"; removed, the run goes on along its yes branch and never visits it.
    assert outcomes(reload(run)) == {made[1].id: "skipped:no such field"}
    assert reload(run).state == "done"


def test_goal_segment_and_inactive_or_deleted_contacts_exit(team, contact):
    goal = Segment.create(team=team, name="Bought", rules={"op": "and", "rules": [
        {"field": "email", "operator": "ends_with", "value": "buyer.example"}]})
    automation, (wait, done) = build(team, ("wait", {"mode": "duration", "minutes": 5}), ("exit", {}),
                                     goal={"kind": "segment", "segment_id": goal.id})
    buyer = Contact.create(team=team, email="b@buyer.example", domain="buyer.example", status="active")
    leaver = Contact.create(team=team, email="l@example.com", domain="example.com", status="active")
    gone = Contact.create(team=team, email="g@example.com", domain="example.com", status="active")
    runs_ = {name: start(automation, c) for name, c in (("buyer", buyer), ("leaver", leaver), ("gone", gone),
                                                         ("ada", contact))}
    Contact.update(status="unsubscribed").where(Contact.id == leaver.id).execute()
    gone.delete_instance()
    scheduler.tick(T0)
    states = {name: (reload(r).state, reload(r).exit_reason) for name, r in runs_.items()}
    assert states == {"buyer": ("exited", "goal"), "leaver": ("exited", "unsubscribed"),
                      "gone": ("exited", "deleted"), "ada": ("waiting", "")}


def test_two_ticks_at_once_never_do_a_step_twice(ctx, team, receiver):
    ctx.config["WEBHOOKS_ALLOW_PRIVATE"] = True
    server = receiver(200)
    automation, (hook, done) = build(team, ("webhook", {"url": server.url}), ("exit", {}))
    started = []
    for i in range(40):
        c = Contact.create(team=team, email=f"c{i}@example.com", domain="example.com", status="active")
        started.append(start(automation, c))
    db.close()  # each thread opens its own connection
    claimed, barrier, errors = [], threading.Barrier(2), []

    def worker():
        try:
            with ctx.app_context():
                barrier.wait()
                claimed.append(scheduler.tick(T0, limit=25))
                db.close()
        except Exception as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(claimed) == 40 and all(count <= 25 for count in claimed)
    keys = [r["headers"]["X-Loft-Idempotency-Key"] for r in server.requests]
    assert len(keys) == 40 and len(set(keys)) == 40
    assert {reload(r).state for r in started} == {"done"}


def test_a_crash_inside_an_effect_is_retried_once_not_skipped(team, contact, monkeypatch):
    news = MailingList.create(team=team, name="News", double_opt_in=False)
    automation, (add, done) = build(team, ("add_to_list", {"list_id": news.id}), ("exit", {}))
    run = start(automation, contact)
    real, calls = steps.EXECUTORS["add_to_list"], []

    def crashing(*args):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("worker died mid-step")
        return real(*args)
    monkeypatch.setitem(steps.EXECUTORS, "add_to_list", crashing)
    scheduler.tick(T0)
    visit = AutomationVisit.get(run=run.id, step=add.id)
    assert (visit.outcome, reload(run).state, reload(run).step_id) == ("", "waiting", add.id)
    assert "worker died" in visit.detail
    assert scheduler.tick(T0 + datetime.timedelta(seconds=30)) == 0  # the retry waits its delay
    scheduler.tick(T0 + scheduler.RETRY_DELAY)
    assert len(calls) == 2
    assert outcomes(run) == {add.id: "done", done.id: "exit"}
    assert Subscription.select().where(Subscription.contact == contact.id).count() == 1


def test_a_recorded_outcome_is_never_done_again(team, contact):
    news = MailingList.create(team=team, name="News", double_opt_in=False)
    automation, (add, done) = build(team, ("add_to_list", {"list_id": news.id}), ("exit", {}))
    run = start(automation, contact)
    # A worker recorded the step's outcome and died before moving the run on.
    AutomationVisit.create(run=run.id, step=add.id, outcome="skipped:refused", done_at=T0)
    scheduler.tick(T0)
    assert not Subscription.select().where(Subscription.contact == contact.id).exists()
    assert reload(run).state == "done"


def test_a_killed_worker_s_lease_runs_out_and_the_run_is_claimed_again(team, contact):
    automation, (done,) = build(team, ("exit", {}))
    run = start(automation, contact)
    assert scheduler.claim(T0) == [run.id]  # claimed, then the worker died without advancing it
    assert scheduler.tick(T0 + datetime.timedelta(minutes=1)) == 0
    assert scheduler.tick(T0 + scheduler.LEASE + datetime.timedelta(seconds=1)) == 1
    assert reload(run).state == "done"


TICKER = """
import os, sys, time
from wsgi import app
from app.automations import scheduler
go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.005)
with app.app_context():
    total = 0
    while True:
        moved = scheduler.tick(limit=7)  # now() from the clock file
        total += moved
        if not moved:
            break
print(total)
"""


def test_two_processes_ticking_at_once_do_each_step_once(app, tmp_path, receiver):
    import os
    import subprocess
    import sys
    from app.config import ROOT
    server = receiver(200)
    with app.app_context():
        team = Team.create(name="Acme", time_zone="Europe/Berlin")
        automation, (hook, done) = build(team, ("webhook", {"url": server.url}), ("exit", {}))
        started = [start(automation, Contact.create(team=team, email=f"p{i}@example.com", domain="example.com",
                                                    status="active")) for i in range(60)]
        db.close()
    clock_file, go = tmp_path / "clock.txt", tmp_path / "go"
    clock.set_time(clock_file, T0)
    env = dict(os.environ, LOFT_DATABASE_URL=app.config["DATABASE_URL"], LOFT_SECRET_KEY="test-secret",
               LOFT_LOG_LEVEL="WARNING", LOFT_WEBHOOKS_ALLOW_PRIVATE="true", LOFT_CLOCK_FILE=str(clock_file),
               LOFT_TESTING="1", LOFT_HUEY_PATH=str(tmp_path / "huey.db"), LOFT_QUEUE_URL="")
    workers = [subprocess.Popen([sys.executable, "-c", TICKER, str(go)], cwd=ROOT, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    time.sleep(1.5)  # both imported and waiting on the go file
    go.write_text("go")
    answers = [worker.communicate(timeout=120) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), answers
    claimed = [int(out.strip().splitlines()[-1]) for out, _ in answers]
    print("claimed by each process:", claimed)
    assert sum(claimed) == 60
    keys = [r["headers"]["X-Loft-Idempotency-Key"] for r in server.requests]
    assert len(keys) == 60 and len(set(keys)) == 60
    with app.app_context():
        assert {reload(r).state for r in started} == {"done"}
        assert AutomationVisit.select().where(AutomationVisit.outcome == "posted").count() == 60


def test_a_tick_out_of_time_gives_back_the_runs_it_did_not_take_up(team, contact):
    automation, (done,) = build(team, ("exit", {}))
    other = Contact.create(team=team, email="bo@example.com", domain="example.com", status="active")
    first, second = start(automation, contact), start(automation, other)
    assert scheduler.tick(T0, budget_seconds=0) == 2  # claimed both, then out of time before the first
    assert {(reload(r).state, reload(r).claimed_until) for r in (first, second)} == {("waiting", None)}
    assert scheduler.tick(T0 + datetime.timedelta(seconds=1)) == 2  # the next tick takes them at once
    assert {reload(r).state for r in (first, second)} == {"done"}


def test_a_lease_leaves_the_indexes_alone_on_postgresql(team, contact):
    """automation_run's pages keep room (migration 0071), so the claim's lease is a heap-only update on PostgreSQL;
    SQLite has no fill factor and the table is as it was."""
    if is_sqlite():
        sql = db.execute_sql("SELECT sql FROM sqlite_master WHERE name = 'automation_run'").fetchone()[0]
        assert "fillfactor" not in sql.lower()
        return
    options = db.execute_sql("SELECT reloptions FROM pg_class WHERE relname = 'automation_run'").fetchone()[0]
    assert "fillfactor=70" in options
    automation = Automation.create(team=team, name="Leased", state="live", trigger={"kind": "manual"}, goal={})
    run = AutomationRun.create(automation=automation, team=team, contact=contact, next_at=T0, data={})
    # The lease changes no indexed column: a heap-only update (pg_stat_xact_* counts this transaction's).
    with db.atomic():
        assert [row.id for row in scheduler.claim_query(T0, 10).execute()] == [run.id]
        updated, hot = db.execute_sql("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
                                      "WHERE relname = 'automation_run'").fetchone()
    assert updated == 1 and hot == 1


def _index_names(table):
    return {index.name for index in db.get_indexes(table)}


def _claim_plan(now):
    """The claim's plan as the database words it (SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN)."""
    sql, params = scheduler.claim_query(now, 10).sql()
    if is_sqlite():
        return " ".join(row[-1] for row in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params))
    with db.atomic():  # a tiny table would be scanned whole; the question is which index the claim can use
        db.execute_sql("SET LOCAL enable_seqscan = off")
        plan = " ".join(row[0] for row in db.execute_sql("EXPLAIN " + sql, params))
        db.rollback()
    return plan


def test_the_claim_reads_the_waiting_runs_by_a_partial_index_that_ended_runs_leave(team, contact):
    """Migration 0077: the claim's index holds the waiting runs only, so ending a run takes it out instead of moving
    it within; the claim says the index's condition in its own words (app.db.in_partial_index) and keeps off the
    automation's index (SQLite's planner would take it for the live automations' IN list and sort every run)."""
    assert {"automation_run_due"} <= _index_names("automation_run")
    assert not {"automation_run_state_next_at", "automation_run_contact_id_state"} & _index_names("automation_run")
    assert "automation_run_due" in _claim_plan(T0)
    automation, (done,) = build(team, ("exit", {}))
    run = start(automation, contact)
    if is_sqlite():  # the index's own rows: one while the run waits, none once it ended
        count = "SELECT COUNT(*) FROM automation_run INDEXED BY automation_run_due WHERE state = 'waiting'"
        assert db.execute_sql(count).fetchone()[0] == 1
    assert scheduler.tick(T0) == 1 and reload(run).state == "done"
    if is_sqlite():
        assert db.execute_sql(count).fetchone()[0] == 0
    assert scheduler.due_count(T0 + datetime.timedelta(days=1)) == 0


def test_migration_0077_goes_down_and_up_again_keeping_the_runs(team, contact):
    automation, _steps = build(team, ("exit", {}))
    run = start(automation, contact)
    runner = Runner(db.obj, MIGRATIONS_DIR)
    rolled = runner.down(target="0077_automation_run_due_index")
    assert rolled[-1] == "0077_automation_run_due_index"
    indexes = _index_names("automation_run")
    assert {"automation_run_state_next_at", "automation_run_contact_id_state"} <= indexes
    assert "automation_run_due" not in indexes
    assert runner.up() == rolled[::-1]
    assert "automation_run_due" in _index_names("automation_run")
    assert reload(run).state == "waiting" and scheduler.tick(T0) == 1 and reload(run).state == "done"
