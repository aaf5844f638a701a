"""The automation engine's heart: tick() claims the runs that are due and walks each through its steps.

The claim is one UPDATE that sets a lease (claimed_until) on at most `limit` due runs of live automations and
returns their ids, so two ticks at once (two worker threads, two machines) never hold the same run. On
PostgreSQL the inner SELECT takes FOR UPDATE SKIP LOCKED (app.db.skip_locked): a second claim skips rows the
first is claiming instead of waiting for them; SQLite's claims run one at a time (IMMEDIATE transactions).

Each step is done through the run's ledger (AutomationVisit, unique per run and step):
  1. the visit is inserted before the step's effect (a second insert is ignored);
  2. a visit that already has an outcome is never done again: the run moves on by the recorded outcome;
  3. after the effect one transaction records the outcome and moves the run.
A crash between 1 and 3 leaves a visit without an outcome: when the lease runs out the run is claimed again and
the effect is done again, which every effect allows (each is idempotent per run and step: app/automations/steps.py).
An effect that raises is retried RETRIES times, a minute apart and more, then the visit is "failed" and the run
exits with reason "failed", so a broken step never holds a run for ever nor skips silently."""
import datetime
import logging
import time
from typing import NamedTuple

from peewee import IntegrityError
from peewee import fn

from app import clock
from app.automations import mail
from app.automations import runs
from app.automations import steps
from app.db import IdList
from app.db import claimed_among
from app.db import plain_rows
from app.db import refresh_statistics
from app.db import db
from app.db import fair_write
from app.db import in_partial_index
from app.db import skip_locked
from app.models import Automation
from app.models import AutomationRun
from app.models import AutomationStep
from app.models import AutomationState
from app.models import AutomationVisit
from app.models import Contact
from app.models import ContactStatus
from app.models import RunState
from app.models import Send
from app.models import StepKind

log = logging.getLogger(__name__)

LEASE = runs.LEASE  # longer than any step takes; a dead worker's runs are free again after it
RETRIES = 3  # attempts of a step whose effect raised, before the run exits as "failed"
RETRY_DELAY = datetime.timedelta(minutes=1)  # times the attempt number
MAX_STEPS = 200  # a tree has no loops; a corrupted one (next_id pointing back) stops here instead of spinning
CHUNK = 500  # ids per IN list when loading claimed runs
BATCH_MIN = 20  # runs at one email step in a tick's chunk that are done together (advance_batches); fewer go one by one
# Runs per transaction of the batched email step: an entering chunk in one (step bench: 250 gave 46-70 µs a run, 500 38-45)
EMAIL_PART = 500
REMOVED_SWEEP = datetime.timedelta(minutes=10)  # steps removed this recently have their waiting runs woken


class Head(NamedTuple):
    """What grouping and the batched email step read of a claimed run: a tuple, because building 1,000 model
    instances a tick (their JSON data decoded and all) was a third of a welcome burst's tick."""
    id: int
    automation_id: int
    step_id: int | None
    contact_id: int | None


HEAD_COLUMNS = (AutomationRun.id, AutomationRun.automation, AutomationRun.step_id, AutomationRun.contact)


class Recipient(NamedTuple):
    """What the batched email step reads of a contact (the same names as Contact's, for the checks that take either)."""
    id: int
    team_id: int
    email: str
    status: str


RECIPIENT_COLUMNS = (Contact.id, Contact.team, Contact.email, Contact.status)


def claim_query(now, limit=1000):
    """The claim: one UPDATE leasing up to `limit` due runs of live automations, returning their ids."""
    live = Automation.select(Automation.id).where(Automation.state == AutomationState.LIVE)
    due = skip_locked(
        AutomationRun.select(AutomationRun.id)
        .where(in_partial_index(AutomationRun.state, RunState.WAITING) & (AutomationRun.next_at <= now)
               & (AutomationRun.claimed_until.is_null() | (AutomationRun.claimed_until < now))
               # "+ 0": the automation's index must not be used here (SQLite's planner, without statistics, would
               # take it for the IN list and sort every run of the live automations); the due index is the way in.
               & claimed_among(AutomationRun.automation + 0, live))
        .order_by(AutomationRun.next_at).limit(limit))
    return (AutomationRun.update(claimed_until=now + LEASE)
            .where(claimed_among(AutomationRun.id, due)).returning(AutomationRun.id))


def claim(now, limit=1000):
    """Lease up to `limit` due runs to this tick; their ids."""
    with fair_write():
        return [run_id for (run_id,) in claim_query(now, limit).tuples().execute()]


def tick(now=None, limit=1000, budget_seconds=None):
    """Claim the due runs and advance each until it waits or ends; how many were claimed (== limit: more due).

    A tick stops taking up claimed runs after `budget_seconds` (half the lease by default) and gives the rest
    their lease back, so a run is never still leased to a slow tick (webhooks that time out one after another)
    when its lease lapses and another tick claims it too."""
    now = now or clock.now()
    budget = LEASE.total_seconds() / 2 if budget_seconds is None else budget_seconds
    started = time.monotonic()
    wake_removed(now)
    ids = claim(now, limit)
    automations = {}
    for start in range(0, len(ids), CHUNK):
        # Lists, not cursors: a SQLite cursor read only partly keeps its read snapshot, and writing from
        # under an old snapshot fails at once ("database is locked") when another tick has written since.
        heads = [Head._make(row) for row in plain_rows(AutomationRun.select(*HEAD_COLUMNS)
                                                       .where(AutomationRun.id << IdList(ids[start:start + CHUNK])))]
        rest = [head.id for head in advance_batches(heads, now, automations)]
        # The runs left for one-by-one advancing are read whole, after the batch moved some of them on.
        claimed = list(AutomationRun.select().where(AutomationRun.id << IdList(rest))) if rest else []
        for run in claimed:
            if time.monotonic() - started > budget:
                _give_back(ids, now + LEASE)
                return len(ids)
            try:
                advance(run, now, automations)
            except Exception:  # one run's bug must not stop the others; its lease frees it for a later tick
                log.exception("automation run %s could not advance", run.id)
    return len(ids)


def advance_batches(claimed, now, automations):
    """Do the email step of many runs standing at it together (a welcome burst) in a few statements each, and return
    the runs left for advance(): those of small groups and other steps, and the batched ones that go on to a next
    step. `claimed` and the result are Heads (the caller reads the runs left whole). The same ledger as advance(),
    the visit unique per (run, step): a run that has a visit of the step already is left to advance(); the others'
    visits are inserted with their outcomes and emails (mail.queue_emails' Send rows) in the transaction that moves
    them on. A crash leaves a part done whole or not at all."""
    rest, pending = [], claimed
    for _ in range(MAX_STEPS):  # the runs a batch moved on are grouped again: a second email step is batched too
        groups, pending = _groups(pending), []
        for (_automation_id, step_id), group in groups.items():
            step = None
            if len(group) >= BATCH_MIN and step_id is not None:
                step = AutomationStep.get_or_none((AutomationStep.id == step_id)
                                                  & (AutomationStep.automation == group[0].automation_id))
            automation = _automation(group[0], automations) if step is not None else None
            if (step is None or step.kind != StepKind.EMAIL or step.removed_at is not None or automation is None
                    or automation.state != AutomationState.LIVE):
                rest += group
                continue
            try:
                left, moved_on = _email_batch(automation, step, group, now)
            except Exception:  # the per-run path does it again (every part is idempotent), owning retries and failures
                log.exception("automation step %s: the batch of %s runs goes one by one", step.id, len(group))
                rest += group
                continue
            rest += left
            pending += moved_on
        if not pending:
            break
    return rest + pending


def starts_with_email(automation):
    """Does a run of this automation meet an email step first? A burst entering it then starts with start_entered."""
    return (automation.first_step_id is not None and AutomationStep.select().where(
        (AutomationStep.id == automation.first_step_id) & (AutomationStep.automation == automation.id)
        & (AutomationStep.kind == StepKind.EMAIL) & AutomationStep.removed_at.is_null()).exists())


def start_entered(automation, entered, now):
    """Runs that have just entered `automation` together at its first step (runs.enter_many, a chunk of a burst),
    given as [(run id, contact id)] and held with the lease (runs.LEASE) since their insert: when that step is an
    email, it is done for them by advance_batches, in the batch's few statements, in the entering process; the
    number done so. Left to the ticks, a welcome burst's runs were claimed and read again by ticks competing with
    each other for the write lock: most of what the burst cost beyond a campaign's sending (docs/benchmarks.md). The
    runs the batch leaves (another kind of step, a chunk smaller than BATCH_MIN, a batch that failed, a next step
    of another kind) get their lease back for the next tick; should this process die first, the lease runs out and
    a tick takes them as any other run."""
    heads = [Head(run_id, automation.id, automation.first_step_id, contact_id) for run_id, contact_id in entered]
    left = [head.id for head in advance_batches(heads, now, {automation.id: automation})]
    _give_back(left, now + LEASE)
    return len(heads) - len(left)


def _groups(claimed):
    groups = {}
    for run in claimed:
        groups.setdefault((run.automation_id, run.step_id), []).append(run)
    return groups


# The runs this process has batched, and the count at which the statistics are next refreshed
_batched = {"runs": 0, "refresh_at": 0}


def _keep_statistics(runs_now):
    """During a burst the runs', visits', mail rows' and sends' tables grow faster than autovacuum analyses them, and
    PostgreSQL plans the batch's lookups by (run, step) and (campaign, contact) as table scans: a tick of 1,000 runs
    went from 0.3 s to 1.4 s over 20,000 runs. Refreshed at this process's first batch and each time the runs it has
    batched since doubled (1,000, 2,000, 4,000, ...): a few ANALYZE a burst, whatever its size. Nothing on SQLite,
    whose planner needs no statistics for these lookups."""
    if _batched["runs"] >= _batched["refresh_at"]:
        refresh_statistics(AutomationRun, AutomationVisit, Send)
        _batched["refresh_at"] = max(1000, 2 * _batched["runs"])
    _batched["runs"] += runs_now


def _email_batch(automation, step, group, now):
    _keep_statistics(len(group))
    contact_ids = [run.contact_id for run in group if run.contact_id]
    contacts = {}
    if contact_ids:
        # Only what the checks and the Send row read, as tuples: a contact model (attributes JSON and all) costs more.
        query = Contact.select(*RECIPIENT_COLUMNS).where(Contact.id << IdList(contact_ids))
        contacts = {row[0]: Recipient._make(row) for row in plain_rows(query)}
    reached = steps.goal_reached_among(automation, contacts.values())
    ready = []
    for run in group:
        contact = contacts.get(run.contact_id)
        why = _why_not(contact) or ("goal" if run.contact_id in reached else None)
        if why:
            runs.end(run.id, RunState.EXITED, why, now)
        else:
            ready.append((run, contact))
    if not ready:
        return [], []
    # The ledger for a batch: each run's visit of the step is inserted with its outcome and its email (send_id), with
    # the Send rows and the runs' move, in one transaction per part (short: a SQLite writer holds the whole database
    # meanwhile, and a crash loses at most a part's work, done again by the next claim). A run that already has a
    # visit of the step (open after a per-run attempt that crashed, or with an outcome) is left to advance(), which
    # finds its email or moves it on by the outcome; so is every run of a part whose visits' insert met one written
    # meanwhile (the unique index fails the transaction, rolled back whole, Send rows included).
    earlier = {run_id for (run_id,) in AutomationVisit.select(AutomationVisit.run).where(
        (AutomationVisit.run << IdList([run.id for run, _contact in ready])) & (AutomationVisit.step == step.id))
        .tuples()}
    rest = [run for run, _contact in ready if run.id in earlier]
    todo = [(run, contact) for run, contact in ready if run.id not in earlier]
    moved = []
    for start in range(0, len(todo), EMAIL_PART):
        part = todo[start:start + EMAIL_PART]
        ids = [run.id for run, _contact in part]
        try:
            screened = mail.screen_emails(automation.team_id, step, part)  # reads only, before the write lock is taken
            with fair_write():
                mail.queue_emails(step, screened, now)
                if step.next_id is None:  # the last step: the runs are done (contact and goal were checked above)
                    runs.end_many(ids, RunState.DONE, "", now, at_end=True)
                else:
                    AutomationRun.update(step_id=step.next_id, next_at=now, waiting_for="").where(
                        (AutomationRun.id << IdList(ids)) & (AutomationRun.state == RunState.WAITING)).execute()
        except IntegrityError:
            rest += [run for run, _contact in part]
            continue
        moved += [run for run, _contact in part]
    if step.next_id is None:
        return rest, []
    return rest, [run._replace(step_id=step.next_id) for run in moved]


def _give_back(ids, lease):
    """End this lease on the runs not taken up (they are still due; the next tick takes them)."""
    for start in range(0, len(ids), CHUNK):
        AutomationRun.update(claimed_until=None).where(
            (AutomationRun.id << IdList(ids[start:start + CHUNK])) & (AutomationRun.claimed_until == lease)).execute()


def wake_removed(now, since=None):
    """Runs waiting in a step removed since `since` (default: the last REMOVED_SWEEP) become due now, so they move
    on by the removed-step rule at once instead of at the end of a wait that no longer exists. Each tick sweeps
    again, so a removal is seen even if no one calls this at the moment of it. The step table is small and each
    update reads one automation's runs (its (automation, contact, entry) index)."""
    since = since or now - REMOVED_SWEEP
    woken = 0
    for step in AutomationStep.select(AutomationStep.id, AutomationStep.automation).where(
            AutomationStep.removed_at >= since):
        woken += AutomationRun.update(next_at=now).where(
            (AutomationRun.automation == step.automation_id) & (AutomationRun.step_id == step.id)
            & (AutomationRun.state == RunState.WAITING) & (AutomationRun.next_at > now)).execute()
    return woken


def _automation(run, cache):
    if run.automation_id not in cache:
        cache[run.automation_id] = Automation.get_or_none(Automation.id == run.automation_id)
    return cache[run.automation_id]


def _release(run_id, **changes):
    """Move a run that stops here (a wait, a retry later): the lease goes, unless it has ended meanwhile."""
    return AutomationRun.update(claimed_until=None, **changes).where(
        (AutomationRun.id == run_id) & (AutomationRun.state == RunState.WAITING)).execute()


def _why_not(contact):
    """Why this contact's run cannot go on, or None."""
    if contact is None:
        return "deleted"
    if contact.status != ContactStatus.ACTIVE:
        return str(contact.status)
    return None


def advance(run, now, automations=None):
    """Walk one claimed run through its steps until a wait, the end, or an exit."""
    automation = _automation(run, automations if automations is not None else {})
    if automation is None or automation.state != AutomationState.LIVE:
        _release(run.id)  # paused between claim and here: it stays where it stands
        return
    for _ in range(MAX_STEPS):
        contact = runs.contact_of(run)
        why = _why_not(contact)
        if why:
            runs.end(run.id, RunState.EXITED, why, now)
            return
        if steps.goal_reached(automation, contact):
            runs.end(run.id, RunState.EXITED, "goal", now)
            return
        if run.step_id is None:
            runs.end(run.id, RunState.DONE, "", now)
            return
        step = AutomationStep.get_or_none((AutomationStep.id == run.step_id)
                                          & (AutomationStep.automation == run.automation_id))
        if step is None:
            runs.end(run.id, RunState.EXITED, "step missing", now)
            return
        if step.removed_at is not None:
            # The removed-step rule (contract): go on to the step's next_id as flow.py left it, doing nothing here.
            if not _move(run, step.next_id, now):
                return
            continue
        visit = _visit(run, step, now)
        if visit.outcome:
            if not _move_on(run, step, visit.outcome, now):
                return
            continue
        try:
            result = steps.execute(run, step, contact, automation, visit, now)
        except Exception as exc:
            _failed(run, step, visit, exc, now)
            return
        if result.wait_until is not None:
            _release(run.id, next_at=result.wait_until, waiting_for=result.waiting_for)
            return
        if not _record(run, step, visit, result, now):
            return


def _visit(run, step, now):
    AutomationVisit.insert(run=run.id, step=step.id, entered_at=now).on_conflict_ignore().execute()
    return AutomationVisit.get((AutomationVisit.run == run.id) & (AutomationVisit.step == step.id))


def _next_of(step, outcome):
    if step.kind == StepKind.CONDITION:
        return step.yes_id if outcome == "yes" else step.no_id
    return step.next_id


def _move(run, next_id, now, data=None):
    """Point the run at its next step (keeping this tick's lease, since it goes on at once); False once ended."""
    changes = dict(step_id=next_id, next_at=now, waiting_for="")
    if data is not None:
        changes["data"] = data
    moved = AutomationRun.update(**changes).where(
        (AutomationRun.id == run.id) & (AutomationRun.state == RunState.WAITING)).execute()
    run.step_id, run.next_at, run.waiting_for = next_id, now, ""
    return bool(moved)


def _move_on(run, step, outcome, now, data=None):
    if step.kind == StepKind.EXIT:
        runs.end(run.id, RunState.DONE, "exit", now)
        return False
    return _move(run, _next_of(step, outcome), now, data=data)


def _record(run, step, visit, result, now):
    """One transaction: the visit's outcome, and the run moved (or ended by an exit step). False: stop here."""
    data = None
    if result.data:
        data = dict(run.data if isinstance(run.data, dict) else {}, **result.data)
        run.data = data
    with db.atomic():
        AutomationVisit.update(outcome=result.outcome, detail=result.detail[:2000], done_at=now).where(
            (AutomationVisit.id == visit.id) & (AutomationVisit.outcome == "")).execute()
        return _move_on(run, step, result.outcome, now, data=data)


def _failed(run, step, visit, exc, now):
    """An effect raised: try again later (the visit stays open), or after RETRIES attempts give up on the run."""
    attempts = visit.detail.count("attempt ") + 1
    detail = (visit.detail + f"attempt {attempts}: {type(exc).__name__}: {exc}\n")[-2000:]
    log.warning("automation run %s step %s failed (attempt %s): %s", run.id, step.id, attempts, exc)
    if attempts >= RETRIES:
        with db.atomic():
            AutomationVisit.update(outcome="failed", detail=detail, done_at=now).where(
                (AutomationVisit.id == visit.id) & (AutomationVisit.outcome == "")).execute()
            runs.end(run.id, RunState.EXITED, "failed", now)
        AutomationRun.update(claimed_until=None).where(AutomationRun.id == run.id).execute()
        return
    with db.atomic():
        AutomationVisit.update(detail=detail).where(AutomationVisit.id == visit.id).execute()
        _release(run.id, next_at=now + RETRY_DELAY * attempts)


def due_count(now=None):
    """Runs due now (for the queue page and tests)."""
    now = now or clock.now()
    return (AutomationRun.select(fn.COUNT(AutomationRun.id))
            .where(in_partial_index(AutomationRun.state, RunState.WAITING) & (AutomationRun.next_at <= now))
            .scalar() or 0)
