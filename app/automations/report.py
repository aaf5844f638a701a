"""What an automation did: per-step counts for the builder and the automation's report page.

Every number comes from a handful of GROUP BY queries over the whole automation (never one query per step):
visits by step and outcome, runs by step and state, and Event rows of the steps' hidden campaigns by campaign and
type (opens and clicks of an automation email are events with campaign_id = the step's campaign)."""
import datetime
from collections import Counter
from collections import defaultdict

from peewee import fn

from app.automations.flow import STEP_LABELS
from app.db import count_rows
from app.models import Automation
from app.models import AutomationRun
from app.models import AutomationStep
from app.models import AutomationVisit
from app.models import Event
from app.models import RunState
from app.models import StepKind
from app.reports import charts

SENT_OUTCOMES = ("queued", "sent")
EXIT_REASONS = {"unsubscribed": "Unsubscribed", "bounced": "Bounced", "complained": "Marked as spam",
                "deleted": "Contact deleted", "goal": "Reached the goal", "reentered": "Entered again",
                "exit_step": "Exit step"}
CHART_DAYS = 30


def step_counts(automation):
    """{step_id: {"entered", "waiting", "sent", "opened", "clicked", "exited"}} for every step, removed ones too."""
    steps = {s.id: s for s in AutomationStep.select(AutomationStep.id, AutomationStep.campaign, AutomationStep.kind)
             .where(AutomationStep.automation == automation.id)}
    counts = {step_id: Counter() for step_id in steps}
    # By the step ids (the visit's step index), not a join: the planner then never scans other automations' visits.
    # The (step, outcome) index answers this alone (migration 0076).
    visits = (AutomationVisit.select(AutomationVisit.step, AutomationVisit.outcome, count_rows())
              .where(AutomationVisit.step.in_(list(steps)))
              .group_by(AutomationVisit.step, AutomationVisit.outcome).tuples()) if steps else []
    for step_id, outcome, number in visits:
        counts[step_id]["entered"] += number
        if outcome in SENT_OUTCOMES:
            counts[step_id]["sent"] += number
    at_step = (AutomationRun.select(AutomationRun.step_id, AutomationRun.state, fn.COUNT(AutomationRun.id))
               .where((AutomationRun.automation == automation.id)
                      & AutomationRun.state.in_([RunState.WAITING, RunState.EXITED]))
               .group_by(AutomationRun.step_id, AutomationRun.state).tuples())
    for step_id, state, number in at_step:
        if step_id in counts:
            counts[step_id]["waiting" if state == RunState.WAITING else "exited"] += number
    campaigns = {s.campaign_id: s.id for s in steps.values() if s.campaign_id}
    if campaigns:
        engaged = (Event.select(Event.campaign_id, Event.type, fn.COUNT(Event.contact.distinct()))
                   .where((Event.team == automation.team_id) & Event.campaign_id.in_(list(campaigns))
                          & Event.type.in_(["opened", "clicked"]))
                   .group_by(Event.campaign_id, Event.type).tuples())
        for campaign_id, kind, number in engaged:
            counts[campaigns[campaign_id]][kind] = number
    return {step_id: {key: counter[key] for key in ("entered", "waiting", "sent", "opened", "clicked", "exited")}
            for step_id, counter in counts.items()}


def run_totals(automation):
    """{"waiting", "done", "exited", "total", "reasons": [(label, count), ...]} over every run."""
    totals = Counter()
    reasons = Counter()
    rows = (AutomationRun.select(AutomationRun.state, AutomationRun.exit_reason, fn.COUNT(AutomationRun.id))
            .where(AutomationRun.automation == automation.id)
            .group_by(AutomationRun.state, AutomationRun.exit_reason).tuples())
    for state, reason, number in rows:
        totals[state] += number
        if state == RunState.EXITED:
            reasons[EXIT_REASONS.get(reason, reason or "Other")] += number
    return {"waiting": totals[RunState.WAITING], "done": totals[RunState.DONE], "exited": totals[RunState.EXITED],
            "total": sum(totals.values()), "reasons": reasons.most_common()}


def totals_by_automation(team):
    """{automation_id: {"waiting", "done", "exited"}} for the team's list, in one GROUP BY."""
    totals = defaultdict(lambda: {"waiting": 0, "done": 0, "exited": 0})
    rows = (AutomationRun.select(AutomationRun.automation, AutomationRun.state, fn.COUNT(AutomationRun.id))
            .where(AutomationRun.team == team).group_by(AutomationRun.automation, AutomationRun.state).tuples())
    for automation_id, state, number in rows:
        if state in (RunState.WAITING, RunState.DONE, RunState.EXITED):
            totals[automation_id][state] = number
    return totals


def entries_per_day(automation, today, days=CHART_DAYS):
    """(labels, counts) of runs entered on each of the last `days` UTC days up to `today`."""
    first = today - datetime.timedelta(days=days - 1)
    day = fn.DATE(AutomationRun.entered_at)  # SQLite: 'YYYY-MM-DD' text; PostgreSQL: a date
    rows = (AutomationRun.select(day, fn.COUNT(AutomationRun.id))
            .where((AutomationRun.automation == automation.id)
                   & (AutomationRun.entered_at >= datetime.datetime.combine(first, datetime.time())))
            .group_by(day).tuples())
    by_day = defaultdict(int)
    for value, number in rows:
        by_day[str(value)[:10]] += number
    labels = [(first + datetime.timedelta(days=i)).isoformat() for i in range(days)]
    return labels, [by_day[label] for label in labels]


def entries_chart(labels, values):
    return charts.bar_chart("Contacts who entered, per day (UTC)", labels, [("Entered", values)])


def email_rates(steps, counts):
    """Each email step's sent, opened and clicked with rates: [(step, numbers, open rate, click rate)]."""
    rows = []
    for step in steps:
        if step.kind != StepKind.EMAIL:
            continue
        numbers = counts.get(step.id, {})
        sent = numbers.get("sent", 0)
        rows.append((step, numbers, (numbers.get("opened", 0) / sent) if sent else 0.0,
                     (numbers.get("clicked", 0) / sent) if sent else 0.0))
    return rows


def _visit_words(step, visit, labels):
    config = step.config if isinstance(step.config, dict) else {}
    outcome, _sep, why = (visit.outcome or "").partition(":")
    if not outcome:
        return "waiting" if step.kind == StepKind.WAIT else f"{labels.get(step.kind, step.kind).lower()}: in progress"
    if step.kind == StepKind.EMAIL:
        words = f"email “{config.get('subject', '')}”"
        return f"{words} sent" if outcome in SENT_OUTCOMES else f"{words} {outcome}" + (f" ({why})" if why else "")
    if step.kind == StepKind.WAIT:
        return "waited" + (f" (ended by {visit.detail})" if visit.detail in ("event", "timeout") else "")
    if step.kind == StepKind.CONDITION:
        return f"condition: {outcome}"
    return f"{labels.get(step.kind, step.kind).lower()}: {outcome}" + (f" ({why})" if why else "")


# A contact's automation items in its Activity timeline (app/contacts/timeline.py merges them with its events). At one
# moment, newest first: a run's end, then a step done, then its entry; events rank above them (EVENT_RANK there).
RANK_ENTERED, RANK_VISIT, RANK_ENDED = 1, 2, 3


def _below(at, ident, rank, key):
    """The keyset condition "(at, rank, id) < key" for one kind of item, whose rank is fixed."""
    if key is None:
        return ident.is_null(False)  # every row
    key_at, key_rank, key_id = key
    if rank < key_rank:
        return at <= key_at
    if rank > key_rank:
        return at < key_at
    return (at < key_at) | ((at == key_at) & (ident < key_id))


def contact_items(contact, before=None, limit=25):
    """The contact's automation items, newest first: each run's entry, each step it did (with its outcome) and its end
    (with the reason), as [{"at", "rank", "id", "automation_id", "automation", "text"}], at most `limit` of them below
    the key `before` = (at, rank, id) (None: from the newest). Four queries whatever the number of items: entries,
    ends, visits with their steps, the automations' names."""
    runs = AutomationRun.select().where((AutomationRun.contact == contact.id) & (AutomationRun.team == contact.team_id))
    entered = list(runs.where(_below(AutomationRun.entered_at, AutomationRun.id, RANK_ENTERED, before))
                   .order_by(AutomationRun.entered_at.desc(), AutomationRun.id.desc()).limit(limit))
    ended = list(runs.where(AutomationRun.ended_at.is_null(False)
                            & _below(AutomationRun.ended_at, AutomationRun.id, RANK_ENDED, before))
                 .order_by(AutomationRun.ended_at.desc(), AutomationRun.id.desc()).limit(limit))
    at = fn.COALESCE(AutomationVisit.done_at, AutomationVisit.entered_at)  # a step in progress: when it began
    visits = list(AutomationVisit.select(AutomationVisit, AutomationStep, AutomationRun.automation)
                  .join(AutomationRun, on=(AutomationVisit.run == AutomationRun.id))
                  .switch(AutomationVisit).join(AutomationStep)
                  .where((AutomationRun.contact == contact.id) & (AutomationRun.team == contact.team_id)
                         & _below(at, AutomationVisit.id, RANK_VISIT, before))
                  .order_by(at.desc(), AutomationVisit.id.desc()).limit(limit))
    items = [(run.entered_at, RANK_ENTERED, run.id, run.automation_id, "entered") for run in entered]
    items += [(run.ended_at, RANK_ENDED, run.id, run.automation_id,
               "exited: " + EXIT_REASONS.get(run.exit_reason, run.exit_reason or "other").lower()
               if run.state == RunState.EXITED else "finished") for run in ended]
    items += [(visit.done_at or visit.entered_at, RANK_VISIT, visit.id, visit.run.automation_id,
               _visit_words(visit.step, visit, STEP_LABELS)) for visit in visits]
    items.sort(key=lambda item: item[:3], reverse=True)
    items = items[:limit]
    ids = {item[3] for item in items}
    names = dict(Automation.select(Automation.id, Automation.name)
                 .where(Automation.id.in_(ids) & (Automation.team == contact.team_id)).tuples()) if ids else {}
    return [{"at": when, "rank": rank, "id": ident, "automation_id": automation_id,
             "automation": names.get(automation_id), "text": text}
            for when, rank, ident, automation_id, text in items]
