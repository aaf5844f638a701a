"""Who would enter an automation over the next days, and when its emails would go out: a preview that reads and
never writes (no run, no visit, no baseline, no email).

What can be known is listed by name; what cannot is estimated and said to be an estimate:
- date_field: the contacts whose date (+ offset) falls on each of the next days in the team's zone, at the trigger's
  time (the hourly check enters them within the hour after it; see triggers.fire_dates);
- segment_entry: who the next check would enter now (members not yet known; the go-live baseline never enters);
  future newcomers cannot be predicted;
- list_join / confirmed / event: the last 7 days' joins, confirmations or events, as a rate;
- manual: nobody until someone starts it by hand.
For a few sample entrants (or one contact entering now), each email step's time is found by walking the step tree:
waits add their time, an event wait is shown at its timeout (the latest it can be), and a condition shows both
branches."""
import datetime

from peewee import fn

from app import clock
from app.automations import steps as step_rules
from app.automations import triggers
from app.models import Automation
from app.models import AutomationEvent
from app.models import AutomationRun
from app.models import AutomationSegmentMark
from app.models import AutomationSegmentMember
from app.models import AutomationStep
from app.models import Contact
from app.models import ContactStatus
from app.models import Reentry
from app.models import RunState
from app.models import StepKind
from app.models import Subscription
from app.models import Team

SAMPLE = 5  # entrants whose email times are walked
LISTED = 200  # entrants listed by name at most (the count is exact beyond it)
MAX_STEPS = 200  # a walk never goes further (the tree has no loops; this guards a broken one)
HISTORY_DAYS = 7


def preview(automation, now=None, days=7):
    """{"kind", "days", "entrants": [{"contact_id", "email", "at"}], "entrant_count", "estimate", "note",
    "schedule": [{"contact_id", "email", "entered_at", "emails": [{"step_id", "subject", "at", "path", "latest"}]}]}.
    Times are naive UTC."""
    now = now or clock.now()
    days = max(1, min(int(days), 31))
    kind = triggers.trigger_of(automation).get("kind", "")
    team = Team.get_or_none(Team.id == automation.team_id)
    entrants, estimate, note = [], None, ""
    if kind == "date_field":
        entrants = date_entrants(automation, team, now, days)
        note = "Contacts whose date falls in the next days; each enters within the hour after the trigger's time."
    elif kind == "segment_entry":
        entrants = segment_newcomers(automation, now)
        note = ("Members who are not yet in it enter at the next check (every few minutes); who joins the segment "
                "later cannot be known in advance. Members at go-live never enter.")
    elif kind in ("list_join", "confirmed", "event"):
        estimate = history_estimate(automation, kind, now, days)
        note = f"An estimate from the last {HISTORY_DAYS} days: {estimate['basis']}."
    elif kind == "manual":
        note = "Nobody enters until someone starts it by hand for chosen contacts."
    entrants = [e for e in entrants if _may_enter(automation, e["contact_id"])]
    sample = entrants[:SAMPLE] or [{"contact_id": None, "email": "", "at": now}]
    schedule = [{**e, "entered_at": e["at"], "emails": email_times(automation, e["at"], team)} for e in sample]
    return {"kind": kind, "days": days, "entrants": entrants[:LISTED], "entrant_count": len(entrants),
            "estimate": estimate, "note": note, "schedule": schedule}


def _may_enter(automation, contact_id):
    """The re-entry rule, read-only: what runs.enter would decide for this contact now."""
    latest = (AutomationRun.select(AutomationRun.state).where((AutomationRun.automation == automation.id)
                                                              & (AutomationRun.contact == contact_id))
              .order_by(AutomationRun.entry.desc()).first())
    if latest is None or automation.reentry == Reentry.ALWAYS:
        return True
    return automation.reentry == Reentry.AFTER_END and latest.state != RunState.WAITING


def date_entrants(automation, team, now, days):
    rule = triggers.date_rule(triggers.trigger_of(automation))
    if rule is None:
        return []
    field, offset, at, yearly = rule
    zone = triggers.team_zone(team)
    today = now.replace(tzinfo=datetime.timezone.utc).astimezone(zone).date()
    found, seen = [], set()
    for ahead in range(days + 1):
        day = today + datetime.timedelta(days=ahead)
        fires = datetime.datetime.combine(day, at, zone).astimezone(datetime.timezone.utc).replace(tzinfo=None)
        if fires > now + datetime.timedelta(days=days):
            break
        target = day - datetime.timedelta(days=offset)
        fired = _fired_on(automation, day) if ahead == 0 else set()
        query = (Contact.select(Contact.id, Contact.email)
                 .where((Contact.team == automation.team_id) & (Contact.status == ContactStatus.ACTIVE)
                        & triggers.date_matches(field, target, yearly)).order_by(Contact.id))
        for contact in query:
            if contact.id in fired or (contact.id, day) in seen:
                continue
            seen.add((contact.id, day))
            found.append({"contact_id": contact.id, "email": contact.email, "at": max(fires, now)})
    return sorted(found, key=lambda e: (e["at"], e["contact_id"]))


def _fired_on(automation, day):
    return {run.contact_id for run in AutomationRun.select(AutomationRun.contact, AutomationRun.data)
            .where(AutomationRun.automation == automation.id)
            if isinstance(run.data, dict) and run.data.get("occurrence") == day.isoformat()}


def segment_newcomers(automation, now):
    segment = triggers.segment_of(automation)
    mark = AutomationSegmentMark.get_or_none(AutomationSegmentMark.automation == automation.id)
    if segment is None or mark is None or mark.segment_id != segment.id:
        return []  # no baseline yet: every current member is baseline, nobody enters
    known = {row.contact_id for row in AutomationSegmentMember.select(AutomationSegmentMember.contact)
             .where(AutomationSegmentMember.automation == automation.id)}
    newcomers = sorted(triggers.member_ids(segment) - known)
    emails = dict(Contact.select(Contact.id, Contact.email).where(Contact.id.in_(newcomers[:LISTED])).tuples()) \
        if newcomers else {}
    active = {row.id for row in Contact.select(Contact.id).where(
        Contact.id.in_(newcomers) & (Contact.status == ContactStatus.ACTIVE))} if newcomers else set()
    return [{"contact_id": cid, "email": emails.get(cid, ""), "at": now} for cid in newcomers if cid in active]


def history_estimate(automation, kind, now, days):
    """{"count": in the last 7 days, "per_day", "expected": over `days`, "basis": what was counted}."""
    since = now - datetime.timedelta(days=HISTORY_DAYS)
    trigger = triggers.trigger_of(automation)
    if kind == "event":
        count = AutomationEvent.select().where((AutomationEvent.team == automation.team_id)
                                               & (AutomationEvent.name == trigger.get("name"))
                                               & (AutomationEvent.created_at >= since)
                                               & (AutomationEvent.created_at <= now)).count()
        basis = f"{count:,} “{trigger.get('name')}” events"
    else:
        joined = fn.COALESCE(Subscription.confirmed_at, Subscription.created_at)
        when = Subscription.confirmed_at if kind == "confirmed" else joined
        count = (Subscription.select().join(Contact).where(
            (Subscription.list == triggers.as_int(trigger.get("list_id"))) & (Contact.team == automation.team_id)
            & (Subscription.status == "subscribed") & (when >= since) & (when <= now)).count())
        basis = f"{count:,} {'confirmations' if kind == 'confirmed' else 'new subscribers'} of the list"
    per_day = count / HISTORY_DAYS
    return {"count": count, "per_day": round(per_day, 2), "expected": round(per_day * days), "basis": basis}


def email_times(automation, entered_at, team):
    """Each email step a contact entering at `entered_at` would reach, with when: [{"step_id", "subject", "at",
    "path" ("" or "yes"/"no" choices joined by "/"), "latest" (an event wait's timeout was assumed)}]."""
    tree = {step.id: step for step in AutomationStep.select().where(AutomationStep.automation == automation.id)}
    zone_name = getattr(team, "time_zone", None) or "UTC"
    out = []
    pending = [(automation.first_step_id, entered_at, "", False)]
    walked = 0
    while pending and walked < MAX_STEPS:
        step_id, at, path, latest = pending.pop(0)
        while step_id is not None and walked < MAX_STEPS:
            walked += 1
            step = tree.get(step_id)
            if step is None:
                break
            if step.removed_at is not None:  # a removed step passes its runs on (flow.py's rule)
                step_id = step.next_id if step.kind != StepKind.CONDITION else (step.yes_id or step.next_id)
                continue
            config = step.config if isinstance(step.config, dict) else {}
            if step.kind == StepKind.EMAIL:
                out.append({"step_id": step.id, "subject": config.get("subject", ""), "at": at, "path": path,
                            "latest": latest})
            elif step.kind == StepKind.WAIT:
                at, waited_for_event = _after_wait(config, at, zone_name)
                latest = latest or waited_for_event
                if at is None:
                    break
            elif step.kind == StepKind.CONDITION:
                pending.append((step.no_id, at, f"{path}/no".lstrip("/"), latest))
                step_id, path = step.yes_id, f"{path}/yes".lstrip("/")
                continue
            elif step.kind == StepKind.EXIT:
                break
            step_id = step.next_id
    return sorted(out, key=lambda e: (e["at"], e["path"]))


def _after_wait(config, at, zone_name):
    """(when the wait ends, True when that is an event wait's timeout); (None, _) when it never ends."""
    mode = config.get("mode")
    if mode == "duration" and isinstance(config.get("minutes"), int):
        return at + datetime.timedelta(minutes=config["minutes"]), False
    if mode == "event" and isinstance(config.get("timeout_minutes"), int):
        return at + datetime.timedelta(minutes=config["timeout_minutes"]), True
    if mode == "until":
        clock_time = step_rules._clock_time(config.get("time"))
        if clock_time is None:
            return None, False
        # The contact's own zone is not known for a sample: the team's is shown (the page says so).
        zone = step_rules.zone_named(zone_name)
        return step_rules.next_weekday_time(at, config.get("weekdays") or [], clock_time, zone), False
    return at, False


def automation_of(team, automation_id):
    return Automation.get_or_none((Automation.id == automation_id) & (Automation.team == team))
