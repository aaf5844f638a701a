"""What starts an automation run, and what ends one early: one entry point per trigger kind, called where the thing
happens (app/contacts/, app/imports/, app/consent/, app/api/, tasks/automation_triggers.py).

Trigger shapes (Automation.trigger, docs/automations.md "Triggers"):
  list_join {"list_id"}      a contact's subscription to the list became "subscribed" (form, import, API, by hand,
                             bulk); on a double-opt-in list that happens at confirmation, not at sign-up
  confirmed {"list_id"}      a double opt-in confirmation
  segment_entry {"segment_id"}  a newcomer to the saved segment (members at go-live are the baseline)
  date_field {"field", "offset_days", "time", "yearly"}  the contact's date field + offset is today, in the team's zone
  event {"name"}             record_event() (POST /api/v1/events)
  manual {}                  start_manually()
Only live automations are entered (runs.enter / runs.enter_many say no otherwise). Every function here is called
after the caller's own write, never in its place, and returns how many runs it started, woke or ended; the caller
(a view or a task) asks tasks.automations.advance_soon() to move them, since a service never enqueues."""
import datetime
import re
import zoneinfo

from app import clock
from app.automations import runs
from app.automations import scheduler
from app.db import db
from app.errors import Problem
from app.models import Automation
from app.models import AutomationDateMark
from app.models import AutomationEvent
from app.models import AutomationRun
from app.models import AutomationSegmentMark
from app.models import AutomationSegmentMember
from app.models import AutomationState
from app.models import Contact
from app.models import ContactStatus
from app.models import RunState
from app.models import Segment
from app.models import Team
from app.segments.services import matching_contacts
from app.segments.services import rules_of

KINDS = ("list_join", "confirmed", "segment_entry", "date_field", "event", "manual")
EVENT_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,100}")  # the same rule as the builder's (flow.py)


class TriggerError(Problem):
    """A refusal of a trigger call (a bad event name, a manual start of an automation that is not live)."""


def _team_id(team):
    return getattr(team, "id", team)


def as_int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def trigger_of(automation):
    trigger = automation.trigger
    return trigger if isinstance(trigger, dict) else {}


def _live(team_id, kind):
    return [a for a in runs.live_automations(_team_id(team_id)) if trigger_of(a).get("kind") == kind]


def _enter(automation, contact_ids, data, now):
    """One contact through runs.enter (its re-entry rule); several through the bulk path."""
    contact_ids = list(contact_ids)
    if len(contact_ids) == 1:
        contact = Contact.get_or_none(Contact.id == contact_ids[0])
        return int(contact is not None and runs.enter(automation, contact, data, now) is not None)
    return enter_many(automation, contact_ids, data, now)


def enter_many(automation, contact_ids, data, now):
    """runs.enter_many, with a first email step done for each chunk's new runs as they enter (scheduler.start_entered)."""
    start = scheduler.start_entered if scheduler.starts_with_email(automation) else None
    return runs.enter_many(automation, contact_ids, data, now, start=start)


# --- Lists ------------------------------------------------------------------------------------------------------

def list_joined(team, contact_ids, list_id, now=None, source=""):
    """Contacts whose subscription to `list_id` just became "subscribed": enter the list_join automations."""
    now = now or clock.now()
    entered = 0
    for automation in _live(team, "list_join"):
        if as_int(trigger_of(automation).get("list_id")) == as_int(list_id):
            entered += _enter(automation, contact_ids, {"trigger": "list_join", "list_id": as_int(list_id),
                                                        "source": source}, now)
    return entered


def lists_with_joins(team, list_ids):
    """The lists among `list_ids` that some live list_join automation of the team starts from."""
    wanted = {as_int(trigger_of(a).get("list_id")) for a in _live(team, "list_join")}
    return [list_id for list_id in list_ids if as_int(list_id) in wanted]


def list_confirmed(team, contact_id, list_id, now=None):
    """A double opt-in confirmed: the list's join happens now, and "confirmed" automations fire too."""
    now = now or clock.now()
    entered = list_joined(team, [contact_id], list_id, now, source="confirmation")
    for automation in _live(team, "confirmed"):
        if as_int(trigger_of(automation).get("list_id")) == as_int(list_id):
            entered += _enter(automation, [contact_id], {"trigger": "confirmed", "list_id": as_int(list_id)}, now)
    return entered


# --- Exits ------------------------------------------------------------------------------------------------------

def contacts_stopped(contact_ids, reason, now=None):
    """Contacts that may no longer be mailed (unsubscribed, bounced, complained, suppressed): every run ends."""
    contact_ids = list(contact_ids)
    return runs.leave(contact_ids, reason, now or clock.now()) if contact_ids else 0


def contacts_deleting(contact_ids, now=None):
    """Called before contacts are deleted (their runs would lose the contact): every run ends as "deleted"."""
    return contacts_stopped(contact_ids, "deleted", now)


def erase_contact(contact_id, now=None):
    """A GDPR erasure: the runs end ("deleted") and forget what their trigger carried; the contact's events go."""
    ended = contacts_deleting([contact_id], now)
    AutomationRun.update(data={}).where(AutomationRun.contact == contact_id).execute()
    AutomationEvent.delete().where(AutomationEvent.contact == contact_id).execute()
    return ended


def left_list(team, contact_id, list_id, now=None):
    """One contact left one list (see left_list_many)."""
    return left_list_many(team, [contact_id], list_id, now)


def left_list_many(team, contact_ids, list_id, now=None):
    """Contacts unsubscribed from (or were taken off) one list: the runs that list started end ("left_list").

    A list-level unsubscribe is the person saying "not this list", so automations started by joining it stop;
    other automations go on (their own steps still honour every consent check before an email)."""
    ended = 0
    now = now or clock.now()
    for automation in Automation.select().where(Automation.team == _team_id(team)):
        trigger = trigger_of(automation)
        if trigger.get("kind") in ("list_join", "confirmed") and as_int(trigger.get("list_id")) == as_int(list_id):
            ended += runs.leave(contact_ids, "left_list", now, automation_id=automation.id)
    return ended


# --- Events -----------------------------------------------------------------------------------------------------

def check_event_name(name):
    name = (name or "").strip() if isinstance(name, str) else ""
    if not EVENT_NAME.fullmatch(name):
        raise TriggerError("An event name is 1 to 100 letters, digits, dots, dashes, colons or underscores, "
                           "such as order.paid.", field="name")
    return name


def record_event(team, contact, name, data=None, now=None):
    """Something happened to a contact: keep it, end runs whose goal it is, wake runs waiting for it, and start
    the automations it triggers (in that order, so an event that is both a trigger and a goal starts a run).
    Returns {"entered", "woken", "goal"}."""
    name = check_event_name(name)
    data = data if isinstance(data, dict) else {}
    now = now or clock.now()
    team_id = _team_id(team)
    if contact.team_id != team_id:
        raise TriggerError("That contact is not in this team.", field="contact_id")
    goal = 0
    with db.atomic():
        AutomationEvent.create(team=team_id, contact=contact.id, name=name, data=data, created_at=now)
        for automation in Automation.select().where(Automation.team == team_id):
            wanted = automation.goal if isinstance(automation.goal, dict) else {}
            if wanted.get("kind") == "event" and wanted.get("name") == name:
                goal += runs.leave([contact.id], "goal", now, automation_id=automation.id)
        woken = _wake(contact.id, name, now)
    entered = 0
    for automation in _live(team_id, "event"):
        if trigger_of(automation).get("name") == name:
            entered += _enter(automation, [contact.id], {"trigger": "event", "event": name, "event_data": data}, now)
    return {"entered": entered, "woken": woken, "goal": goal}


def _wake(contact_id, name, now):
    """Runs of the contact whose wait step waits for this event are due now; the wait records how it ended."""
    woken = 0
    waiting = AutomationRun.select().where((AutomationRun.contact == contact_id)
                                           & (AutomationRun.state == RunState.WAITING)
                                           & (AutomationRun.waiting_for == name))
    for run in waiting:
        data = dict(run.data) if isinstance(run.data, dict) else {}
        data["last_wait"] = "event"
        woken += (AutomationRun.update(next_at=now, data=data)
                  .where((AutomationRun.id == run.id) & (AutomationRun.state == RunState.WAITING)
                         & (AutomationRun.waiting_for == name)).execute())
    return woken


# --- Manual -----------------------------------------------------------------------------------------------------

def require_live(automation):
    """TriggerError unless the automation is live (a draft or paused one starts nobody by hand)."""
    if automation.state != AutomationState.LIVE:
        raise TriggerError(f"“{automation.name}” is not live: start it first, then add contacts by hand.",
                           field="automation_id")


def start_manually(automation, contact_ids, user=None, now=None):
    """Start a live automation for the chosen contacts (of its team, active): how many entered. `user` is the
    person (or their id) who started it, kept on each run."""
    require_live(automation)
    return enter_many(automation, contact_ids, {"trigger": "manual", "by": getattr(user, "id", user)},
                      now or clock.now())


# --- Segment entry ----------------------------------------------------------------------------------------------

def segment_of(automation):
    segment_id = as_int(trigger_of(automation).get("segment_id"))
    if segment_id is None:
        return None
    return Segment.get_or_none((Segment.id == segment_id) & (Segment.team == automation.team_id))


def member_ids(segment):
    return {row.id for row in matching_contacts(segment.team_id, rules_of(segment)).select(Contact.id)}


def sync_segment(automation, now=None):
    """Compare the segment's members with the known ones: the first look (or a changed segment) is the baseline;
    later, newcomers enter (only while live) and those who left are forgotten, so leaving and coming back is a new
    entry (the re-entry rule decides). Returns how many entered."""
    now = now or clock.now()
    segment = segment_of(automation)
    if segment is None:
        return 0
    members = member_ids(segment)
    mark = AutomationSegmentMark.get_or_none(AutomationSegmentMark.automation == automation.id)
    with db.atomic():
        if mark is None or mark.segment_id != segment.id:
            AutomationSegmentMember.delete().where(AutomationSegmentMember.automation == automation.id).execute()
            _remember(automation.id, members, now)
            AutomationSegmentMark.delete().where(AutomationSegmentMark.automation == automation.id).execute()
            AutomationSegmentMark.create(automation=automation.id, segment_id=segment.id, baseline_at=now,
                                         checked_at=now)
            return 0
        known = {row.contact_id for row in AutomationSegmentMember.select(AutomationSegmentMember.contact)
                 .where(AutomationSegmentMember.automation == automation.id)}
        newcomers, gone = members - known, known - members
        _remember(automation.id, newcomers, now)
        for start in range(0, len(gone), 500):
            chunk = sorted(gone)[start:start + 500]
            AutomationSegmentMember.delete().where((AutomationSegmentMember.automation == automation.id)
                                                   & AutomationSegmentMember.contact.in_(chunk)).execute()
        AutomationSegmentMark.update(checked_at=now).where(AutomationSegmentMark.id == mark.id).execute()
    if automation.state != AutomationState.LIVE or not newcomers:
        return 0  # a paused automation keeps its baseline current: nobody who joined meanwhile enters on resume
    return enter_many(automation, newcomers, {"trigger": "segment_entry", "segment_id": segment.id}, now)


def _remember(automation_id, contact_ids, now):
    rows = [{"automation": automation_id, "contact": cid, "since": now} for cid in sorted(contact_ids)]
    for start in range(0, len(rows), 500):
        AutomationSegmentMember.insert_many(rows[start:start + 500]).on_conflict_ignore().execute()


def went_live(automation, now=None):
    """Take the segment baseline when an automation goes live (the periodic check takes it too, if missed), and
    start a date trigger's window."""
    now = now or clock.now()
    if trigger_of(automation).get("kind") == "segment_entry":
        sync_segment(automation, now)
    date_window_from(automation, now)


def resumed(automation, now=None):
    """A paused automation is live again: the dates that passed while it was paused do not fire (as list joins
    meanwhile did not start it); a segment's baseline was kept current during the pause."""
    date_window_from(automation, now or clock.now())


def check_segments(now=None):
    """The periodic task: every live or paused segment-entry automation compared with its segment."""
    entered = 0
    for automation in Automation.select().where(Automation.state.in_([AutomationState.LIVE, AutomationState.PAUSED])):
        if trigger_of(automation).get("kind") == "segment_entry":
            entered += sync_segment(automation, now)
    return entered


def contact_changed(team, contact_id, now=None):
    """One contact's fields, tags or lists changed: check the team's live segment triggers for that contact now,
    rather than at the next periodic check. Automations without a baseline yet are left to the periodic check."""
    now = now or clock.now()
    entered = 0
    for automation in _live(team, "segment_entry"):
        segment = segment_of(automation)
        mark = AutomationSegmentMark.get_or_none(AutomationSegmentMark.automation == automation.id)
        if segment is None or mark is None or mark.segment_id != segment.id:
            continue
        member = matching_contacts(segment.team_id, rules_of(segment)).where(Contact.id == contact_id).exists()
        known = AutomationSegmentMember.select().where((AutomationSegmentMember.automation == automation.id)
                                                       & (AutomationSegmentMember.contact == contact_id))
        if member and not known.exists():
            _remember(automation.id, [contact_id], now)
            entered += _enter(automation, [contact_id], {"trigger": "segment_entry", "segment_id": segment.id}, now)
        elif not member:
            AutomationSegmentMember.delete().where((AutomationSegmentMember.automation == automation.id)
                                                   & (AutomationSegmentMember.contact == contact_id)).execute()
    return entered


# --- Date fields ------------------------------------------------------------------------------------------------

def team_zone(team):
    try:
        return zoneinfo.ZoneInfo(getattr(team, "time_zone", None) or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def date_rule(trigger):
    """(field, offset_days, time, yearly) of a date_field trigger, or None when it is broken."""
    field = trigger.get("field")
    offset = as_int(trigger.get("offset_days", 0))
    try:
        at = datetime.time.fromisoformat(str(trigger.get("time") or "00:00"))
    except ValueError:
        return None
    if not isinstance(field, str) or not re.fullmatch(r"[a-z0-9_]{1,64}", field) or offset is None:
        return None
    return field, offset, at, bool(trigger.get("yearly"))


def _is_leap(year):
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def date_matches(field, target, yearly):
    """The condition on Contact for "the date field names `target`" (yearly: the same month and day; a Feb 29
    date's anniversary is Feb 28 in a year without one). Dates are stored as YYYY-MM-DD text."""
    raw = Contact.attributes[field].as_text()
    if not yearly:
        return raw == target.isoformat()
    month_day = target.strftime("%m-%d")
    day = raw.endswith("-" + month_day)
    if month_day == "02-28" and not _is_leap(target.year):
        day |= raw.endswith("-02-29")
    return day & (raw <= target.isoformat())


CATCH_UP_DAYS = 7  # occurrences the hourly check missed (the worker was down) still fire this many days late


def occurrences(automation, now, since=None):
    """[(the contact date that fires, the local day it fires on, the moment it fires (aware))] for each local day in
    the team's zone from `since`'s (at most CATCH_UP_DAYS back) through today; [] when the trigger is broken."""
    rule = date_rule(trigger_of(automation))
    if rule is None:
        return []
    field, offset, at, yearly = rule
    zone = team_zone(Team.get_or_none(Team.id == automation.team_id))
    local = lambda moment: moment.replace(tzinfo=datetime.timezone.utc).astimezone(zone).date()  # noqa: E731
    today = local(now)
    first = max(local(since) if since is not None else today, today - datetime.timedelta(days=CATCH_UP_DAYS))
    return [(day - datetime.timedelta(days=offset), day, datetime.datetime.combine(day, at, zone))
            for day in (first + datetime.timedelta(days=n) for n in range((today - first).days + 1))]


def _date_mark(automation, now):
    mark = AutomationDateMark.get_or_none(AutomationDateMark.automation == automation.id)
    if mark is None:  # made live without went_live (an older automation, a script): its window starts now
        AutomationDateMark.insert(automation=automation.id, live_since=now).on_conflict_ignore().execute()
        mark = AutomationDateMark.get(AutomationDateMark.automation == automation.id)
    return mark


def fire_dates(automation, now=None):
    """Enter the contacts whose date field (+ offset) is today in the team's zone, once "time" has passed there; once
    per occurrence (a run's data["occurrence"] holds the local day it fired for). Days since the last check are
    looked at too (a late "time" such as 23:30 that the hourly check passes at 00:01; a worker that was down), back
    to the day the automation went live, and at most CATCH_UP_DAYS: a missed birthday email goes out late rather
    than never, and going live (or resuming) never fires for the days before."""
    now = now or clock.now()
    if automation.state != AutomationState.LIVE:
        return 0
    mark = _date_mark(automation, now)
    since = max(mark.live_since, mark.checked_at or mark.live_since)
    moment = now.replace(tzinfo=datetime.timezone.utc)
    entered = sum(_fire_day(automation, target, day, now) for target, day, fires in occurrences(automation, now, since)
                  if fires <= moment)
    AutomationDateMark.update(checked_at=now).where(AutomationDateMark.id == mark.id).execute()
    return entered


def date_window_from(automation, now):
    """Going live or resuming: the date window starts now (no occurrence of an earlier day fires)."""
    if trigger_of(automation).get("kind") != "date_field":
        return
    with db.atomic():
        AutomationDateMark.delete().where(AutomationDateMark.automation == automation.id).execute()
        AutomationDateMark.create(automation=automation.id, live_since=now)


def _fire_day(automation, target, day, now):
    field, _, _, yearly = date_rule(trigger_of(automation))
    candidates = [row.id for row in Contact.select(Contact.id).where(
        (Contact.team == automation.team_id) & (Contact.status == ContactStatus.ACTIVE)
        & date_matches(field, target, yearly))]
    if not candidates:
        return 0
    done = set()
    for start in range(0, len(candidates), 500):
        chunk = candidates[start:start + 500]
        for run in AutomationRun.select(AutomationRun.contact, AutomationRun.data).where(
                (AutomationRun.automation == automation.id) & AutomationRun.contact.in_(chunk)):
            if isinstance(run.data, dict) and run.data.get("occurrence") == day.isoformat():
                done.add(run.contact_id)
    fresh = [cid for cid in candidates if cid not in done]
    data = {"trigger": "date_field", "field": field, "occurrence": day.isoformat()}
    return _enter(automation, fresh, data, now) if fresh else 0


def check_dates(now=None):
    """The periodic task: every live date-field automation."""
    now = now or clock.now()
    entered = 0
    for automation in Automation.select().where(Automation.state == AutomationState.LIVE):
        if trigger_of(automation).get("kind") == "date_field":
            entered += fire_dates(automation, now)
    return entered
