"""What each kind of automation step does to one run: the executors the scheduler (scheduler.py) calls.

execute() returns a Result: either an outcome (the visit's, e.g. "waited", "yes", "queued", "skipped:...") and the
run moves on, or wait_until (and waiting_for) and the run waits in the step. Every effect is idempotent per run
and step, because a crash after the effect but before its outcome is recorded makes the scheduler do it again:
  - waits compute their deadline from the visit's entered_at, so a second look finds the same deadline;
  - list and field changes check the state first (already on the list, already that value);
  - the email step is app.automations.mail.queue_email, whose own ledger hands one message per run and step to SMTP;
  - the webhook step sends X-Loft-Idempotency-Key (run and step) so a receiver can drop a repeat.
Configs are trusted (flow.py validates them) but a broken one is skipped with "skipped:<why>", never raised."""
import datetime
import json
import logging
import time
import zoneinfo
from typing import NamedTuple

from app import security
from app.automations import mail
from app.contacts import services as contacts
from app.contacts.common import ContactError
from app.contacts.fields import fields_of
from app.db import IdList
from app.models import Contact
from app.models import MailingList
from app.models import Segment
from app.models import StepKind
from app.models import Subscription
from app.models import Team
from app.segments import services as segments
from app.segments.compiler import SegmentError
from app.webhooks import delivery
from app.webhooks import ssrf

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT = 10  # seconds: a slow receiver holds one tick's run, never the queue
WEBHOOK_ATTEMPTS = 3  # the scheduler's RETRIES: the last failure is recorded and the run goes on
UTC = zoneinfo.ZoneInfo("UTC")


class Result(NamedTuple):
    outcome: str = ""
    detail: str = ""
    wait_until: datetime.datetime | None = None  # set: the run waits in this step until then
    waiting_for: str = ""  # an event name that wakes it earlier
    data: dict | None = None  # merged into the run's data (last_wait)


def execute(run, step, contact, automation, visit, now):
    executor = EXECUTORS.get(step.kind)
    if executor is None:
        return Result(f"skipped:unknown step kind {step.kind!r}")
    config = step.config if isinstance(step.config, dict) else {}
    return executor(run, step, config, contact, automation, visit, now)


# --- Waits ----------------------------------------------------------------------------------------

def zone_named(*names):
    """The first of `names` that is a valid IANA zone name, else UTC."""
    for name in names:
        if isinstance(name, str) and name.strip():
            try:
                return zoneinfo.ZoneInfo(name.strip())
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                continue
    return UTC


def contact_zone(contact, team_zone_name):
    """The contact's "timezone" attribute if it is a valid IANA name, else the team's zone (UTC if broken)."""
    return zone_named(contacts.attributes_of(contact).get("timezone"), team_zone_name)


def _team_zone_name(team_id):
    team = Team.get_or_none(Team.id == team_id)
    return team.time_zone if team else "UTC"


def _clock_time(text):
    try:
        hours, minutes = (int(part) for part in str(text).split(":"))
        return datetime.time(hours, minutes)
    except (TypeError, ValueError):
        return None


def next_weekday_time(after, weekdays, at, zone):
    """The first moment strictly after `after` (naive UTC) that is one of `weekdays` (Monday=0; empty: any) at
    wall-clock `at` in `zone`, as naive UTC. zoneinfo does the DST arithmetic: 09:00 in Berlin is 08:00 UTC in
    winter and 07:00 UTC in summer. A wall-clock time that a spring-forward skips reads with the earlier offset."""
    days = {d for d in weekdays if isinstance(d, int) and 0 <= d <= 6} or set(range(7))
    local = after.replace(tzinfo=UTC).astimezone(zone)
    for offset in range(8):
        day = local.date() + datetime.timedelta(days=offset)
        if day.weekday() not in days:
            continue
        moment = datetime.datetime.combine(day, at, tzinfo=zone).astimezone(UTC).replace(tzinfo=None)
        if moment > after:
            return moment
    return None


def wait(run, step, config, contact, automation, visit, now):
    mode = config.get("mode")
    start = visit.entered_at
    if mode == "duration":
        minutes = config.get("minutes")
        if not isinstance(minutes, int) or minutes < 0:
            return Result("skipped:wait without minutes")
        deadline = start + datetime.timedelta(minutes=minutes)
        return Result("waited") if now >= deadline else Result(wait_until=deadline)
    if mode == "until":
        at = _clock_time(config.get("time"))
        if at is None:
            return Result("skipped:wait without a time of day")
        if config.get("zone") == "contact":
            zone = contact_zone(contact, _team_zone_name(run.team_id))
        else:
            zone = zone_named(_team_zone_name(run.team_id))
        deadline = next_weekday_time(start, config.get("weekdays") or [], at, zone)
        if deadline is None:
            return Result("skipped:no matching day")
        if now >= deadline:
            return Result("waited", f"until {deadline.isoformat()} UTC ({zone.key})")
        return Result(wait_until=deadline)
    if mode == "event":
        name = config.get("event")
        minutes = config.get("timeout_minutes")
        if not isinstance(name, str) or not name or not isinstance(minutes, int) or minutes < 0:
            return Result("skipped:wait for event without an event or timeout")
        deadline = start + datetime.timedelta(minutes=minutes)
        if now >= deadline:
            return Result("timeout", data={"last_wait": "timeout"})
        if run.waiting_for == name:
            # The run was set waiting for it and is looked at before its timeout: only the event (triggers.
            # record_event sets next_at to now) makes a waiting run due early.
            return Result("event", data={"last_wait": "event"})
        return Result(wait_until=deadline, waiting_for=name)
    return Result(f"skipped:unknown wait mode {mode!r}")


# --- Conditions -----------------------------------------------------------------------------------

def in_segment(contact, segment_id):
    """Is this contact a member of the team's saved segment? (One query through the segment compiler.)"""
    segment = Segment.get_or_none((Segment.id == segment_id) & (Segment.team == contact.team_id))
    if segment is None:
        return None
    query = segments.matching_contacts(contact.team_id, segments.rules_of(segment))
    return query.where(Contact.id == contact.id).exists()


def goal_reached(automation, contact):
    goal = automation.goal if isinstance(automation.goal, dict) else {}
    if goal.get("kind") != "segment":
        return False  # an event goal is reached in triggers.record_event, which exits the run there
    try:
        return bool(in_segment(contact, goal.get("segment_id")))
    except SegmentError:
        return False


def goal_reached_among(automation, contacts):
    """goal_reached for many contacts of one team at once: the ids of those who reached the segment goal, in one
    query per 500 (a burst at an email step asks this, not a query per run)."""
    goal = automation.goal if isinstance(automation.goal, dict) else {}
    ids = [contact.id for contact in contacts if contact is not None]
    if goal.get("kind") != "segment" or not ids:
        return set()
    segment = Segment.get_or_none((Segment.id == goal.get("segment_id")) & (Segment.team == automation.team_id))
    if segment is None:
        return set()
    try:
        query = segments.matching_contacts(automation.team_id, segments.rules_of(segment))
        return {contact_id for start in range(0, len(ids), 500) for (contact_id,) in query.select(Contact.id).where(
            Contact.id << IdList(ids[start:start + 500])).tuples()}
    except SegmentError:
        return set()


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def field_test(contact, field, op, value):
    if field in ("email", "name"):
        actual = getattr(contact, field)
    else:
        actual = contacts.attributes_of(contact).get(field)
    if op == "is_set":
        return actual not in (None, "", [])
    if op == "is_not_set":
        return actual in (None, "", [])
    text = "" if actual is None else str(actual)
    wanted = "" if value is None else str(value)
    if op == "equals":
        return text.strip().casefold() == wanted.strip().casefold()
    if op == "not_equals":
        return text.strip().casefold() != wanted.strip().casefold()
    if op == "contains":
        return wanted.strip().casefold() in text.casefold()
    if op in ("greater", "less"):
        if actual is None or text == "":
            return False
        left, right = _number(text), _number(wanted)
        if left is None or right is None:
            left, right = text, wanted  # dates (ISO text) and other text compare in order
        return left > right if op == "greater" else left < right
    raise ValueError(f"unknown operator {op!r}")


def condition(run, step, config, contact, automation, visit, now):
    test = config.get("test")
    if test in ("opened", "clicked"):
        answer = mail.engaged(run, config.get("step_id"), test)
        return Result("yes" if answer else "no", f"{test} the email of step {config.get('step_id')}")
    if test == "field":
        try:
            answer = field_test(contact, config.get("field"), config.get("op"), config.get("value"))
        except ValueError as exc:
            return Result("no", f"broken condition: {exc}")
        return Result("yes" if answer else "no", f"{config.get('field')} {config.get('op')} {config.get('value')}")
    if test == "segment":
        try:
            answer = in_segment(contact, config.get("segment_id"))
        except SegmentError as exc:
            return Result("no", f"segment rules unusable: {exc}")
        if answer is None:
            return Result("no", "the segment no longer exists")
        return Result("yes" if answer else "no", f"segment {config.get('segment_id')}")
    return Result("no", f"unknown test {test!r}")


# --- Changes to the contact -----------------------------------------------------------------------

def _team_list(contact, config):
    team = Team.get_by_id(contact.team_id)
    mailing_list = MailingList.get_or_none((MailingList.id == config.get("list_id"))
                                           & (MailingList.team == contact.team_id))
    return team, mailing_list


def add_to_list(run, step, config, contact, automation, visit, now):
    team, mailing_list = _team_list(contact, config)
    if mailing_list is None:
        return Result("skipped:the list no longer exists")
    if Subscription.select().where((Subscription.contact == contact.id) & (Subscription.list == mailing_list.id)
                                   & (Subscription.status == "subscribed")).exists():
        return Result("done", "already on the list")
    try:
        contacts.add_to_list(team, contact, mailing_list)
    except ContactError as exc:
        return Result("skipped:refused", str(exc))
    return Result("done", f"added to {mailing_list.name}")


def remove_from_list(run, step, config, contact, automation, visit, now):
    team, mailing_list = _team_list(contact, config)
    if mailing_list is None:
        return Result("skipped:the list no longer exists")
    removed = contacts.remove_from_list(team, contact, mailing_list)
    return Result("done", f"removed from {mailing_list.name}" if removed else "was not on the list")


def set_field(run, step, config, contact, automation, visit, now):
    team = Team.get_by_id(contact.team_id)
    key = config.get("field")
    if key not in {field.key for field in fields_of(team)}:
        return Result("skipped:no such field", str(key))
    form = {"email": contact.email, "name": contact.name, "status": contact.status,
            f"attr.{key}": str(config.get("value", ""))}
    try:
        contacts.update_contact(team, contact, form)
    except ContactError as exc:
        return Result("skipped:refused", str(exc))
    return Result("done", f"{key} = {config.get('value', '')}")


# --- Outside ---------------------------------------------------------------------------------------

def webhook(run, step, config, contact, automation, visit, now):
    """A direct POST through the outgoing-webhook guard (app/webhooks/delivery.post: private addresses refused,
    address pinned after the check). Not a WebhookDelivery: those belong to a team's endpoints and Event rows,
    while this URL is the step's own. Failures are retried by the scheduler, then recorded and the run goes on."""
    url = config.get("url")
    if not isinstance(url, str) or not url:
        return Result("skipped:no url")
    body = json.dumps({
        "type": "automation.step", "at": delivery.isoformat(now),
        "automation": {"id": automation.id, "name": automation.name},
        "run": {"id": run.id, "entry": run.entry, "data": run.data if isinstance(run.data, dict) else {}},
        "step": {"id": step.id, "kind": step.kind},
        "contact": {"id": contact.id, "email": contact.email, "name": contact.name,
                    "fields": contacts.attributes_of(contact)},
    }, separators=(",", ":"), ensure_ascii=False, default=str)
    headers = {"Content-Type": "application/json", "User-Agent": delivery.USER_AGENT,
               "X-Loft-Idempotency-Key": f"automation-run-{run.id}-step-{step.id}"}
    stored = config.get("secret")
    if isinstance(stored, str) and stored:
        # Signed as Loft's webhooks are (app/webhooks/delivery.py), with the step's own secret from its edit form.
        secret = security.decrypt(stored)
        if secret is None:
            return Result("failed", "The signing secret cannot be read (the encryption key changed): save the step "
                                    "again to make a new one, and give it to the receiver.")
        timestamp = str(int(time.time()))
        headers["X-Loft-Timestamp"] = timestamp
        headers["X-Loft-Signature"] = delivery.signature(secret, timestamp, body.encode())
    try:
        status, excerpt = delivery.post(url, body, headers, allow_private_targets=delivery.allow_private(),
                                        timeout=WEBHOOK_TIMEOUT)
    except ssrf.Refused as exc:
        return Result("skipped:refused", str(exc))
    except OSError as exc:
        return _webhook_failure(visit, f"{type(exc).__name__}: {exc}")
    if 200 <= status < 300:
        return Result("posted", f"HTTP {status}")
    return _webhook_failure(visit, f"HTTP {status}: {excerpt[:200]}")


def _webhook_failure(visit, why):
    if visit.detail.count("attempt ") + 1 < WEBHOOK_ATTEMPTS:
        raise OSError(f"webhook failed, to be tried again: {why}")  # the scheduler retries the step later
    return Result("failed", why)


def email(run, step, config, contact, automation, visit, now):
    outcome = mail.queue_email(run, step, contact, now, visit)
    return Result(outcome)


def exit_step(run, step, config, contact, automation, visit, now):
    return Result("exit")


EXECUTORS = {
    StepKind.WAIT: wait, StepKind.CONDITION: condition, StepKind.ADD_TO_LIST: add_to_list,
    StepKind.REMOVE_FROM_LIST: remove_from_list, StepKind.SET_FIELD: set_field, StepKind.WEBHOOK: webhook,
    StepKind.EMAIL: email, StepKind.EXIT: exit_step,
}
