"""The scheduler's batched email step (scheduler.advance_batches, mail.queue_emails, ledger.queue_many): a burst of
runs standing at one email step is done in a few statements, with the per-run path's guarantees: exactly one email
per (run, step) across a crash and a retry, a re-entered contact's finished message queued again, the skip rules,
contact exits, paused automations untouched. Every message really goes through the campaign engine to the catcher."""
import datetime

import pytest

from app.automations import mail
from app.automations import runs
from app.automations import scheduler
from app.automations import triggers
from app.consent import suppression
from app.models import Automation
from app.models import AutomationRun
from app.models import AutomationStep
from app.models import AutomationVisit
from app.models import Campaign
from app.models import CaughtMessage
from app.models import Contact
from app.models import Send
from app.models import Subscription
from app.models import utcnow
from tasks import sending as sending_tasks

COUNT = scheduler.BATCH_MIN + 5


def email_config(subject="Welcome {{ contact.name }}"):
    return {"subject": subject, "preheader": "", "kind": "html", "body": "<p>Hi {{ contact.name }}</p>",
            "template_id": None, "from_name": "", "from_email": ""}


def make_automation(team, reentry="never", configs=(None,)):
    """A live automation of email steps in a row, From the ready team's verified acme.example."""
    automation = Automation.create(team=team, name="Welcome", trigger={"kind": "manual"}, goal={}, reentry=reentry,
                                   state="live", from_name="Acme", from_email="hello@acme.example")
    steps = [AutomationStep.create(automation=automation, kind="email", config=config or email_config())
             for config in configs]
    for step, following in zip(steps, steps[1:]):
        AutomationStep.update(next_id=following.id).where(AutomationStep.id == step.id).execute()
    automation.first_step_id = steps[0].id
    automation.save()
    return automation, [AutomationStep.get_by_id(s.id) for s in steps]


@pytest.fixture
def burst(ready_team):
    """COUNT more active contacts on the ready team's list (reader10 ... ), ids in order."""
    team, news = ready_team
    contacts = []
    for i in range(10, 10 + COUNT):
        contact = Contact.create(team=team, email=f"reader{i}@example.com", domain="example.com", name=f"Reader {i}",
                                 status="active")
        Subscription.create(contact=contact, list=news, status="subscribed")
        contacts.append(contact)
    return team, contacts


@pytest.fixture
def no_single_path(monkeypatch):
    """The per-run email step refuses to work: whatever gets queued was queued by the batch."""
    def refuse(*args, **kwargs):
        raise AssertionError("the per-run email step was used")
    monkeypatch.setattr(mail, "queue_email", refuse)


def emails_of(step):
    """How many runs' visits of the step hold a queued email (its Send row)."""
    return AutomationVisit.select().where((AutomationVisit.step == step.id)
                                          & AutomationVisit.send_id.is_null(False)).count()


def deliver(step):
    step = AutomationStep.get_by_id(step.id)
    return sending_tasks.run_campaign(step.campaign_id)


def test_a_burst_is_queued_once_per_run_by_the_batch(ctx, burst, no_single_path):
    team, contacts = burst
    automation, (first, second) = make_automation(team, configs=(None, email_config(subject="Second")))
    suppressed, no_address, leaving = contacts[0], contacts[1], contacts[2]
    suppression.suppress(team.id, "email", suppressed.email, "manual")
    now = utcnow()
    assert runs.enter_many(automation, [c.id for c in contacts], now=now) == COUNT
    Contact.update(email="").where(Contact.id == no_address.id).execute()
    Contact.update(status="unsubscribed").where(Contact.id == leaving.id).execute()

    assert scheduler.tick(now=now) == COUNT
    first, second = AutomationStep.get_by_id(first.id), AutomationStep.get_by_id(second.id)
    # Both email steps were batched (the second as the runs went on together), each once per run.
    for step in (first, second):
        assert Send.select().where(Send.campaign == step.campaign_id).count() == COUNT - 3
        assert emails_of(step) == COUNT - 3
        assert Campaign.get_by_id(step.campaign_id).total == COUNT - 3
        # Each visit holds its own contact's message of this step, done at `now`, after the newest event then.
        held = (AutomationVisit.select(AutomationRun.contact, Send.contact, Send.campaign, AutomationVisit.done_at,
                                       AutomationVisit.after_event_id)
                .join(AutomationRun, on=(AutomationVisit.run == AutomationRun.id))
                .switch(AutomationVisit).join(Send, on=(AutomationVisit.send_id == Send.id))
                .where(AutomationVisit.step == step.id).tuples())
        assert len(held) == COUNT - 3
        assert {(run_contact == send_contact, campaign, done) for run_contact, send_contact, campaign, done, _after
                in held} == {(True, step.campaign_id, now)}
    outcomes = {run_id: outcome for run_id, outcome in AutomationVisit.select(
        AutomationVisit.run, AutomationVisit.outcome).where(AutomationVisit.step == first.id).tuples()}
    by_contact = {run.contact_id: outcomes.get(run.id) for run in AutomationRun.select()}
    assert by_contact[suppressed.id] == "skipped:suppressed" and by_contact[no_address.id] == "skipped:no_address"
    assert by_contact[leaving.id] is None  # the run exited before the step
    assert list(set(by_contact.values()) - {None, "skipped:suppressed", "skipped:no_address"}) == ["queued"]
    states = {run.contact_id: (run.state, run.exit_reason) for run in AutomationRun.select()}
    assert states[leaving.id] == ("exited", "unsubscribed")
    assert sum(1 for state in states.values() if state == ("done", "")) == COUNT - 1
    assert AutomationRun.select().where(AutomationRun.claimed_until.is_null(False)
                                        & (AutomationRun.state == "waiting")).count() == 0

    assert deliver(first).outcome == "idle"
    assert CaughtMessage.select().count() == COUNT - 3
    assert scheduler.tick(now=now + datetime.timedelta(minutes=10)) == 0  # nothing left to do, nothing sent again


def test_a_crash_between_queueing_and_the_outcomes_sends_once(ctx, burst):
    team, contacts = burst
    automation, (step,) = make_automation(team)
    now = utcnow()
    runs.enter_many(automation, [c.id for c in contacts], now=now)
    scheduler.tick(now=now)
    step = AutomationStep.get_by_id(step.id)
    sends = {s.id: s.status for s in Send.select().where(Send.campaign == step.campaign_id)}
    assert len(sends) == COUNT
    # What a kill -9 of a per-run attempt leaves after queue_email's transaction (the batch writes its visits, Sends
    # and moves in one transaction, so it leaves all or nothing): the visits holding their emails and the Send rows
    # written, the visits without an outcome, the runs still waiting at the step under a lease that has run out. The
    # runs with a visit go one by one (advance), whose queue_email finds each email queued.
    AutomationVisit.update(outcome="", done_at=None).where(AutomationVisit.step == step.id).execute()
    AutomationRun.update(state="waiting", exit_reason="", ended_at=None, step_id=step.id, next_at=now,
                         claimed_until=now - datetime.timedelta(seconds=1)).execute()
    later = now + datetime.timedelta(minutes=6)
    assert scheduler.tick(now=later) == COUNT
    assert {s.id: s.status for s in Send.select().where(Send.campaign == step.campaign_id)} == sends
    assert emails_of(step) == COUNT
    assert set(AutomationVisit.select(AutomationVisit.outcome).where(AutomationVisit.step == step.id)
               .tuples()) == {("queued",)}
    assert AutomationRun.select().where(AutomationRun.state == "done").count() == COUNT
    deliver(step)
    assert CaughtMessage.select().count() == COUNT
    # The same after delivery: the step redone once more for every run adds no message.
    AutomationVisit.update(outcome="", done_at=None).execute()
    AutomationRun.update(state="waiting", step_id=step.id, next_at=later, claimed_until=None).execute()
    scheduler.tick(now=later)
    assert set(s.status for s in Send.select().where(Send.campaign == step.campaign_id)) == {"sent"}
    deliver(step)
    assert CaughtMessage.select().count() == COUNT


def test_a_re_entered_burst_gets_its_message_again_once(ctx, burst, no_single_path):
    team, contacts = burst
    automation, (step,) = make_automation(team, reentry="after_end")
    now = utcnow()
    ids = [c.id for c in contacts]
    runs.enter_many(automation, ids, now=now)
    scheduler.tick(now=now)
    deliver(step)
    assert CaughtMessage.select().count() == COUNT
    later = now + datetime.timedelta(minutes=1)
    assert runs.enter_many(automation, ids, now=later) == COUNT  # every contact's second entry
    assert scheduler.tick(now=later) == COUNT
    step = AutomationStep.get_by_id(step.id)
    assert Send.select().where(Send.campaign == step.campaign_id).count() == COUNT  # the same rows, queued again
    assert Send.select().where((Send.campaign == step.campaign_id) & (Send.status == "queued")).count() == COUNT
    assert AutomationVisit.select().where(AutomationVisit.send_id.is_null(False)).count() == 2 * COUNT
    deliver(step)
    assert CaughtMessage.select().count() == 2 * COUNT
    assert Campaign.get_by_id(step.campaign_id).total == COUNT


def test_a_paused_automation_and_a_removed_step_are_not_batched_as_emails(ctx, burst):
    team, contacts = burst
    automation, (first, second) = make_automation(team, configs=(None, email_config(subject="Second")))
    now = utcnow()
    runs.enter_many(automation, [c.id for c in contacts], now=now)
    Automation.update(state="paused").where(Automation.id == automation.id).execute()
    assert scheduler.tick(now=now) == 0
    assert Send.select().count() == 0 and AutomationVisit.select().count() == 0
    # The first step removed while they wait: they go on to the second by the removed-step rule, emailed once there.
    AutomationStep.update(removed_at=now).where(AutomationStep.id == first.id).execute()
    Automation.update(state="live").where(Automation.id == automation.id).execute()
    assert scheduler.tick(now=now) == COUNT
    assert emails_of(first) == 0
    assert emails_of(second) == COUNT
    assert AutomationRun.select().where(AutomationRun.state == "done").count() == COUNT


def test_a_visit_written_meanwhile_rolls_the_part_back_and_its_runs_go_one_by_one(ctx, burst, monkeypatch):
    """Another process queued one run's email between the batch's look and its insert: the part's visits fail on the
    (run, step) unique index as peewee's IntegrityError (app.db.Many.run), nothing of the transaction stays (Send rows
    included), and the part's runs go one by one (advance), each queued once."""
    team, contacts = burst
    automation, (step,) = make_automation(team)
    now = utcnow()
    runs.enter_many(automation, [c.id for c in contacts], now=now)
    racer = AutomationRun.select().order_by(AutomationRun.id)[3]
    queue_many = mail.ledger.queue_many

    def the_other_process_was_first(campaign_id, recipients, **kwargs):
        added = queue_many(campaign_id, recipients, **kwargs)
        message = Send.get((Send.campaign == campaign_id) & (Send.contact == racer.contact_id))
        AutomationVisit.create(run=racer.id, step=step.id, entered_at=now, send_id=message.id)
        return added
    monkeypatch.setattr(mail.ledger, "queue_many", the_other_process_was_first)
    singles = []
    queue_email = mail.queue_email
    monkeypatch.setattr(mail, "queue_email", lambda *args: singles.append(args[0].id) or queue_email(*args))

    assert scheduler.tick(now=now) == COUNT

    assert sorted(singles) == sorted(run.id for run in AutomationRun.select())
    campaign_id = AutomationStep.get_by_id(step.id).campaign_id
    assert emails_of(step) == COUNT
    assert set(AutomationVisit.select(AutomationVisit.outcome).tuples()) == {("queued",)}
    assert Send.select().where(Send.campaign == campaign_id).count() == COUNT
    assert Campaign.get_by_id(campaign_id).total == COUNT
    assert AutomationRun.select().where(AutomationRun.state == "done").count() == COUNT


def test_a_burst_whose_contacts_reached_a_segment_goal_exits_them_in_the_batch(ctx, burst, no_single_path):
    """A segment goal is checked for the whole batch in one query (steps.goal_reached_among): the members exit with
    reason "goal" and get no email; the others get theirs."""
    from app.models import Segment
    team, contacts = burst
    bought = Segment.create(team=team, name="Bought", rules={"op": "and", "rules": [
        {"field": "email", "operator": "starts_with", "value": "reader1"}]})
    automation, (step,) = make_automation(team)
    Automation.update(goal={"kind": "segment", "segment_id": bought.id}).where(Automation.id == automation.id).execute()
    now = utcnow()
    runs.enter_many(automation, [c.id for c in contacts], now=now)

    assert scheduler.tick(now=now) == COUNT
    members = {c.id for c in contacts if c.email.startswith("reader1")}
    assert 0 < len(members) < COUNT
    states = {run.contact_id: (run.state, run.exit_reason) for run in AutomationRun.select()}
    assert {cid for cid, state in states.items() if state == ("exited", "goal")} == members
    campaign_id = AutomationStep.get_by_id(step.id).campaign_id
    assert {cid for (cid,) in Send.select(Send.contact).where(Send.campaign == campaign_id).tuples()} == \
        {c.id for c in contacts} - members


# --- A burst that enters at an email step: done as it enters (scheduler.start_entered) -----------------------------

def email_then_wait(team):
    """A live automation: an email, then a two-day wait, then a second email."""
    automation, (first, second) = make_automation(team, configs=(None, email_config(subject="Second")))
    wait = AutomationStep.create(automation=automation, kind="wait", config={"mode": "duration", "minutes": 2880},
                                 next_id=second.id)
    AutomationStep.update(next_id=wait.id).where(AutomationStep.id == first.id).execute()
    return automation, AutomationStep.get_by_id(first.id), wait, second


def test_a_burst_entering_at_an_email_step_has_it_queued_as_it_enters(ctx, burst, no_single_path, monkeypatch):
    """The production path (triggers.start_manually): the runs' first emails are queued while they enter, with the
    batch's skip rules; no tick claimed them; they stand unleased at the wait, which the next tick starts; every
    message goes out once."""
    team, contacts = burst
    automation, first, wait, _second = email_then_wait(team)
    suppressed, leaving = contacts[0], contacts[1]
    suppression.suppress(team.id, "email", suppressed.email, "manual")
    claims = []
    claim = scheduler.claim
    monkeypatch.setattr(scheduler, "claim", lambda *args, **kwargs: claims.append(args) or claim(*args, **kwargs))
    now = utcnow()
    assert triggers.start_manually(automation, [c.id for c in contacts], now=now) == COUNT
    assert claims == []  # the entering did the step itself
    monkeypatch.undo()

    first = AutomationStep.get_by_id(first.id)
    assert emails_of(first) == COUNT - 1
    outcomes = {run.contact_id: outcome for run, outcome in (
        (AutomationRun.get_by_id(run_id), outcome) for run_id, outcome in AutomationVisit.select(
            AutomationVisit.run, AutomationVisit.outcome).where(AutomationVisit.step == first.id).tuples())}
    assert outcomes[suppressed.id] == "skipped:suppressed"
    assert set(outcomes.values()) == {"queued", "skipped:suppressed"}
    assert Campaign.get_by_id(first.campaign_id).total == COUNT - 1
    standing = list(AutomationRun.select())
    assert {(run.state, run.step_id, run.claimed_until) for run in standing} == {("waiting", wait.id, None)}

    Contact.update(status="unsubscribed").where(Contact.id == leaving.id).execute()
    assert scheduler.tick(now=now) == COUNT  # the wait starts for each: two days
    assert AutomationRun.select().where(AutomationRun.next_at > now + datetime.timedelta(days=1)).count() == COUNT - 1
    assert deliver(first).outcome == "idle"
    # The one who unsubscribed after entering had a queued email: the engine skips it at claim time.
    assert CaughtMessage.select().count() == COUNT - 2
    assert Send.get((Send.campaign == first.campaign_id) & (Send.contact == leaving.id)).status == "skipped"
    assert scheduler.tick(now=now + datetime.timedelta(hours=1)) == 0  # nothing again before the wait ends
    assert CaughtMessage.select().count() == COUNT - 2


def test_runs_entered_for_their_first_step_are_held_from_the_ticks(ctx, burst):
    """Runs entered with `start` are inserted holding the scheduler's lease: a tick between their commit and the
    step claims none of them. If the entering process dies there (here `start` raises), the lease runs out and a
    tick takes them, each email queued once."""
    team, contacts = burst
    automation, (step,) = make_automation(team)
    now = utcnow()
    ids = [c.id for c in contacts]
    given, ticked = [], []

    def tick_then_die(automation, entered, now):
        given.extend(entered)
        ticked.append(scheduler.tick(now=now))
        raise RuntimeError("the entering process was killed")
    with pytest.raises(RuntimeError):
        runs.enter_many(automation, ids, now=now, start=tick_then_die)
    assert ticked == [0]
    stored = {run.id: run for run in AutomationRun.select()}
    assert sorted(given) == sorted((run.id, run.contact_id) for run in stored.values())
    assert {run.claimed_until for run in stored.values()} == {now + scheduler.LEASE}
    assert emails_of(step) == 0
    assert scheduler.tick(now=now + scheduler.LEASE - datetime.timedelta(seconds=1)) == 0
    assert scheduler.tick(now=now + scheduler.LEASE + datetime.timedelta(seconds=1)) == COUNT  # the lease ran out
    step = AutomationStep.get_by_id(step.id)
    assert emails_of(step) == COUNT
    assert Send.select().where(Send.campaign == step.campaign_id).count() == COUNT


def test_a_start_given_a_run_a_concurrent_entry_made_is_not(ctx, burst):
    """A contact another process entered a moment before (enter(), its own run) is neither counted nor handed to
    `start`, which gets exactly the runs this call inserted."""
    team, contacts = burst
    automation, _steps = make_automation(team)
    now = utcnow()
    raced = runs.enter(automation, contacts[0], now=now)
    given = []
    assert runs.enter_many(automation, [c.id for c in contacts], now=now,
                           start=lambda _a, entered, _now: given.extend(entered)) == COUNT - 1
    assert raced.id not in {run_id for run_id, _contact_id in given}
    assert {contact_id for _run_id, contact_id in given} == {c.id for c in contacts[1:]}
    assert AutomationRun.get_by_id(raced.id).claimed_until is None


def test_what_start_entered_leaves_alone(ctx, burst, monkeypatch):
    """An automation that starts with another step, a chunk smaller than a batch, and a batch that fails: the runs
    stay at their first step, their lease given back, for the tick (which does a failed batch's runs one by one,
    once each)."""
    team, contacts = burst
    ids = [c.id for c in contacts]
    now = utcnow()
    waiting = Automation.create(team=team, name="Wait first", trigger={"kind": "manual"}, goal={}, state="live",
                                from_name="Acme", from_email="hello@acme.example")
    wait = AutomationStep.create(automation=waiting, kind="wait", config={"mode": "duration", "minutes": 60})
    waiting.first_step_id = wait.id
    waiting.save()
    assert runs.enter_many(waiting, ids, now=now, start=scheduler.start_entered) == COUNT
    assert AutomationVisit.select().count() == 0
    assert AutomationRun.select().where(AutomationRun.claimed_until.is_null(False)).count() == 0

    automation, (step,) = make_automation(team)
    few = ids[:scheduler.BATCH_MIN - 1]
    assert runs.enter_many(automation, few, now=now, start=scheduler.start_entered) == len(few)
    assert AutomationVisit.select().count() == 0
    assert AutomationRun.select().where(AutomationRun.claimed_until.is_null(False)).count() == 0

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")
    monkeypatch.setattr(mail, "queue_emails", broken)
    assert runs.enter_many(automation, ids, now=now, start=scheduler.start_entered) == COUNT - len(few)
    monkeypatch.undo()
    assert Send.select().count() == 0
    assert AutomationRun.select().where(AutomationRun.claimed_until.is_null(False)).count() == 0

    assert scheduler.tick(now=now) == 2 * COUNT
    step = AutomationStep.get_by_id(step.id)
    assert emails_of(step) == COUNT
    assert AutomationRun.select().where((AutomationRun.automation == automation.id)
                                        & (AutomationRun.state == "done")).count() == COUNT


def test_a_burst_entering_an_automation_with_no_step_left_ends_at_the_next_tick(ctx, burst):
    """Every step removed while live: the burst's runs are written with no step (a NULL in the INSERT ... SELECT) and
    end done at the next tick, nothing queued."""
    team, contacts = burst
    automation = Automation.create(team=team, name="Empty", trigger={"kind": "manual"}, goal={}, state="live",
                                   from_name="Acme", from_email="hello@acme.example")
    now = utcnow()
    assert triggers.start_manually(automation, [c.id for c in contacts], now=now) == COUNT
    assert {run.step_id for run in AutomationRun.select()} == {None}
    assert scheduler.tick(now=now) == COUNT
    assert AutomationRun.select().where(AutomationRun.state == "done").count() == COUNT
    assert Send.select().count() == 0
