"""Entering and leaving automations: the one place that creates AutomationRun rows and ends them.

A trigger (app/automations/triggers.py) calls enter(); the scheduler moves runs on; anything that makes a contact
unmailable calls leave(). Entry numbers make "one run per contact per automation" a unique index rather than a
check that two processes could both pass."""
import datetime

from peewee import IntegrityError
from peewee import Value

from app.db import IdList
from app.db import db
from app.db import plain_rows
from app.db import refresh_statistics
from app.models import Automation
from app.models import AutomationRun
from app.models import AutomationState
from app.models import Contact
from app.models import ContactStatus
from app.models import Reentry
from app.models import RunState
from app.models.common import utcnow

ACTIVE = (RunState.WAITING,)
# The scheduler's lease on a run (app/automations/scheduler.py claims with it): longer than any step takes, so a dead
# worker's runs are free again after it. Runs entered for `start` (enter_many) are inserted holding it.
LEASE = datetime.timedelta(minutes=5)


def _latest(automation_id, contact_id):
    return (AutomationRun.select()
            .where((AutomationRun.automation == automation_id) & (AutomationRun.contact == contact_id))
            .order_by(AutomationRun.entry.desc()).first())


def enter(automation, contact, data=None, now=None, *, test=False):
    """Start `contact` on `automation` and return the run, or None when the re-entry rule, the automation's
    state or the contact's status says no. `test` lets a draft be tried with one contact."""
    if automation.team_id != contact.team_id or contact.status != ContactStatus.ACTIVE:
        return None
    if automation.state != AutomationState.LIVE and not test:
        return None
    now = now or utcnow()
    previous = _latest(automation.id, contact.id)
    if previous is not None:
        if automation.reentry == Reentry.NEVER:
            return None
        if previous.state in ACTIVE:
            if automation.reentry != Reentry.ALWAYS:
                return None
            end(previous.id, RunState.EXITED, "reentered", now)
    try:
        with db.atomic():
            return AutomationRun.create(
                automation=automation.id, team=automation.team_id, contact=contact.id,
                entry=(previous.entry + 1) if previous else 1, state=RunState.WAITING,
                step_id=automation.first_step_id, next_at=now, data=data or {}, entered_at=now)
    except IntegrityError:  # another process entered the same contact a moment ago
        return None


def end(run_id, state, reason="", now=None):
    """Finish one run (DONE at the end of its steps, EXITED with a reason). True if it was still going."""
    return bool(AutomationRun.update(state=state, exit_reason=reason, ended_at=now or utcnow(), next_at=None,
                                     waiting_for="")
                .where((AutomationRun.id == run_id) & (AutomationRun.state.in_(ACTIVE))).execute())


def leave(contact_ids, reason, now=None, automation_id=None):
    """Exit every running run of these contacts (unsubscribed, bounced, complained, deleted, goal): the count."""
    query = AutomationRun.update(state=RunState.EXITED, exit_reason=reason, ended_at=now or utcnow(),
                                 next_at=None, waiting_for="")
    where = AutomationRun.contact.in_(list(contact_ids)) & AutomationRun.state.in_(ACTIVE)
    if automation_id is not None:
        where &= AutomationRun.automation == automation_id
    return query.where(where).execute()


def live_automations(team_id):
    return list(Automation.select().where((Automation.team == team_id) & (Automation.state == AutomationState.LIVE)))


def contact_of(run):
    return Contact.get_or_none(Contact.id == run.contact_id) if run.contact_id else None


def enter_many(automation, contact_ids, data=None, now=None, *, chunk=500, start=None, on_entered=None):
    """Start many contacts at once (an import, a manual start, a segment's newcomers): the number that entered.
    With `start`, each chunk's new runs are inserted held (the scheduler's lease, LEASE, as a tick's claim sets it:
    no tick takes them meanwhile), and after the chunk's commit `start(automation, [(run id, contact id)], now)` is
    given them: app/automations/triggers.py passes scheduler.start_entered, which does a first email step for them
    at once and gives back the lease on the rest. Then `on_entered(count)` is called (outside a transaction only:
    the caller has the runs moved while the rest still enter).

    Contacts with no run of this automation yet go in with one INSERT per chunk (entry 1; the unique index makes a
    concurrent enter() of the same contact a no-op); contacts with an earlier run go one by one through enter(), so
    the re-entry rule is decided in one place. Only active contacts of the automation's team enter, and only while
    it is live."""
    if automation.state != AutomationState.LIVE:
        return 0
    now = now or utcnow()
    ids = sorted({int(cid) for cid in contact_ids})
    many = len(ids) > 10 * chunk
    if many:  # PostgreSQL: an import just wrote these contacts; stale statistics plan each chunk as a table scan
        refresh_statistics(Contact, AutomationRun)
    entered = 0
    stored = AutomationRun.data.db_value(dict(data or {}))
    for offset in range(0, len(ids), chunk):
        if many and offset and offset % (20 * chunk) == 0:
            refresh_statistics(AutomationRun)  # the table grows under the burst: keep its lookups on the index
        batch = ids[offset:offset + chunk]
        # Plain rows: a model instance per id cost more than the query (a tenth of a burst's entering).
        active = [cid for (cid,) in plain_rows(Contact.select(Contact.id).where(
            Contact.id << IdList(batch) & (Contact.team == automation.team_id)
            & (Contact.status == ContactStatus.ACTIVE)))]
        if not active:
            continue
        seen = {cid for (cid,) in plain_rows(AutomationRun.select(AutomationRun.contact).where(
            (AutomationRun.automation == automation.id) & (AutomationRun.contact << IdList(active))).distinct())}
        fresh = [cid for cid in active if cid not in seen]
        before, new_runs = entered, []
        if fresh:
            with db.atomic():
                # One INSERT ... SELECT from the contacts, as a campaign's audience is frozen: the same values bound
                # row by row cost five times as much (docs/benchmarks.md), and peewee building a 500-row INSERT cost
                # more than running it. It returns the rows inserted: a contact a concurrent enter() took a moment
                # ago is skipped, not counted.
                new_runs = _new_runs(automation, fresh, stored, now, held_until=now + LEASE if start else None)
            entered += len(new_runs)
        for cid in (cid for cid in active if cid in seen):
            contact = Contact.get_or_none(Contact.id == cid)
            if contact is not None and enter(automation, contact, data, now) is not None:
                entered += 1
        if start is not None and new_runs:
            start(automation, new_runs, now)
        if on_entered is not None and entered > before:
            on_entered(entered - before)
    if many:
        refresh_statistics(AutomationRun)  # the scheduler claims from these rows next
    return entered


NEW_RUN_FIELDS = [AutomationRun.automation, AutomationRun.team, AutomationRun.contact, AutomationRun.entry,
                  AutomationRun.state, AutomationRun.step_id, AutomationRun.next_at, AutomationRun.data,
                  AutomationRun.entered_at, AutomationRun.waiting_for, AutomationRun.exit_reason,
                  AutomationRun.claimed_until]


def _new_runs(automation, contact_ids, stored_data, now, held_until=None):
    """First runs (entry 1) of these contacts, due now at the first step, leased until `held_until` if given: the
    [(run id, contact id)] inserted."""
    due = AutomationRun.next_at.db_value(now)
    held = AutomationRun.claimed_until.db_value(held_until)
    rows = Contact.select(Value(automation.id), Value(automation.team_id), Contact.id, Value(1),
                          Value(RunState.WAITING.value), Value(automation.first_step_id), Value(due),
                          Value(stored_data), Value(due), Value(""), Value(""), Value(held)).where(
        Contact.id << IdList(contact_ids))
    query = (AutomationRun.insert_from(rows, NEW_RUN_FIELDS).on_conflict_ignore()
             .returning(AutomationRun.id, AutomationRun.contact))
    return list(db.execute(query).fetchall())


def team_automation(team, automation_id):
    """The team's automation with this id, or None (another team's id is simply not found)."""
    if automation_id is None:
        return None
    return Automation.get_or_none((Automation.id == automation_id) & (Automation.team == getattr(team, "id", team)))


def end_many(run_ids, state, reason="", now=None, chunk=500, at_end=False):
    """end() for many runs at once (a burst that finished its last step together): how many were still going.
    `at_end`: they went past their last step, so they stand at no step (as a run that walked off its branch)."""
    run_ids, ended = list(run_ids), 0
    moved = {"step_id": None} if at_end else {}
    for start in range(0, len(run_ids), chunk):
        ended += (AutomationRun.update(state=state, exit_reason=reason, ended_at=now or utcnow(), next_at=None,
                                       waiting_for="", **moved)
                  .where((AutomationRun.id << IdList(run_ids[start:start + chunk])) & (AutomationRun.state.in_(ACTIVE)))
                  .execute())
    return ended
