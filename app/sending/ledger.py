"""The send ledger: one Send row per campaign and contact, the source of truth for sending.

freeze_audience() materialises the audience when a campaign is published,
with INSERT ... SELECT in ranges of contact ids, so the work happens inside
the database and memory stays flat however large the audience is. The
UNIQUE (campaign, contact) index makes it idempotent: freezing twice, or
resuming a freeze cut short by a crash, never adds anyone twice.

Statuses of a Send (the engine moves them; see app/sending/engine.py):

    queued ──claim──▶ sending ──▶ sent | bounced | failed | skipped
      ▲                  │
      └── deferred ◀─────┘  (temporary failure, retried at next_attempt_at)
    held: the rest of an A/B test's audience, waiting for the winner.

"sending" means claimed by a run: written (with attempts + 1) before the
SMTP conversation starts. A Send still in "sending" when a run starts again
was claimed when the previous run died; it is queued again (see
recover_in_flight). Most of those never left; the ones that can reach someone
twice are the deliveries started and not yet recorded, which the engine keeps
to a small number (SEND_MAX_UNRECORDED, app/sending/engine.py).
"""
import datetime
import json

from peewee import JOIN
from peewee import Value
from peewee import fn

from app.db import db
from app.models import Campaign
from app.models import Contact
from app.models import Event
from app.models import MailingList
from app.models import Segment
from app.models import Send
from app.models import Subscription
from app.models import utcnow

CHUNK = 50_000  # contact ids per INSERT ... SELECT (one short transaction each)

PENDING = ("queued", "deferred", "sending")  # work left for the engine


class LedgerError(ValueError):
    """The audience cannot be resolved, with a message for the person."""


def audience_of(campaign):
    try:
        selected = json.loads(campaign.audience or "{}")
    except ValueError:
        raise LedgerError("The campaign's audience is damaged; choose its lists and segments again.")
    return selected if isinstance(selected, dict) else {}


def _team_ids(model, team_id, values):
    """Ids among `values` that are rows of `model` belonging to the team (others are ignored)."""
    wanted = {int(v) for v in values or () if str(v).isdigit()}
    if not wanted:
        return []
    return [row.id for row in model.select(model.id).where((model.team == team_id) & (model.id << list(wanted)))]


def _segment_condition(team_id, segment_ids):
    """One condition on Contact that is true for members of any of the segments."""
    from app.segments.compiler import SegmentError
    from app.segments.compiler import compile_rules
    conditions = []
    for segment in Segment.select().where((Segment.team == team_id) & (Segment.id << segment_ids)):
        try:
            rules = json.loads(segment.rules or "{}")
            conditions.append(compile_rules(team_id, rules))
        except (SegmentError, ValueError) as exc:
            raise LedgerError(f"The segment “{segment.name}” cannot be used: {exc}")
    return conditions


def audience_condition(campaign, lo=None, hi=None):
    """The peewee condition on Contact selecting the campaign's recipients.

    Active contacts of the team (unsubscribed, bounced, complained and
    suppressed ones never match) that are subscribed to one of the lists or
    match one of the segments, minus the exclusions. `lo`/`hi` bound the
    contact ids, and the subqueries with them, so one chunk stays cheap.
    """
    team_id = campaign.team_id
    selected = audience_of(campaign)
    condition = (Contact.team == team_id) & (Contact.status == "active")
    if lo is not None:
        condition &= Contact.id.between(lo, hi)

    def subscribed(list_ids):
        query = Subscription.select(Subscription.contact).where(
            (Subscription.list << list_ids) & (Subscription.status == "subscribed"))
        if lo is not None:
            query = query.where(Subscription.contact.between(lo, hi))
        return query

    def members(conditions):
        query = Contact.select(Contact.id).where((Contact.team == team_id) & _any(conditions))
        if lo is not None:
            query = query.where(Contact.id.between(lo, hi))
        return query

    lists = _team_ids(MailingList, team_id, selected.get("lists"))
    segments = _team_ids(Segment, team_id, selected.get("segments"))
    included = []
    if lists:
        included.append(Contact.id << subscribed(lists))
    if segments:
        included.append(Contact.id << members(_segment_condition(team_id, segments)))
    if not included:
        return None
    condition &= _any(included)
    exclude_lists = _team_ids(MailingList, team_id, selected.get("exclude_lists"))
    if exclude_lists:
        condition &= Contact.id.not_in(subscribed(exclude_lists))
    exclude_segments = _team_ids(Segment, team_id, selected.get("exclude_segments"))
    if exclude_segments:
        # NOT IN over a subquery, never NOT(expr): a rule on a missing field is NULL, not false.
        condition &= Contact.id.not_in(members(_segment_condition(team_id, exclude_segments)))
    condition &= _resend_condition(selected)
    return condition


def _any(conditions):
    result = conditions[0]
    for condition in conditions[1:]:
        result |= condition
    return result


def _resend_condition(selected):
    """A resend copy: only the parent's non-openers, or only contacts the parent never had."""
    parent_id = selected.get("resend_of")
    who = selected.get("resend_to")
    if not parent_id or who not in ("non_openers", "newcomers"):
        return Value(1) == 1
    parent_sends = Send.select(Send.contact).where((Send.campaign == parent_id) & Send.contact.is_null(False))
    if who == "newcomers":
        return Contact.id.not_in(parent_sends)
    opened = Event.select(Event.contact).where((Event.campaign_id == parent_id) & (Event.type == "opened")
                                               & Event.contact.is_null(False))
    return (Contact.id << parent_sends.where(Send.status == "sent")) & Contact.id.not_in(opened)


def count_audience(campaign):
    """How many contacts the audience selects right now (the live count before publishing)."""
    condition = audience_condition(campaign)
    if condition is None:
        return 0
    return Contact.select(fn.COUNT(Contact.id)).where(condition).scalar() or 0


def freeze_audience(campaign, chunk=CHUNK):
    """Write one queued Send per recipient; returns the number of recipients.

    Runs INSERT ... SELECT per range of contact ids, each range in its own
    short transaction (the write lock is never held for long), ignoring
    contacts already in the ledger. Sets Campaign.total and frozen_at.
    """
    condition = audience_condition(campaign)
    if condition is not None:
        bounds = (Contact.select(fn.MIN(Contact.id), fn.MAX(Contact.id))
                  .where(Contact.team == campaign.team_id).tuples().first())
        start, hi = bounds if bounds and bounds[0] is not None else (1, 0)
        fields = [Send.campaign, Send.contact, Send.email, Send.status, Send.attempts, Send.message_id, Send.error]
        while start is not None and start <= hi:
            end = start + chunk - 1
            rows = (Contact.select(Value(campaign.id), Contact.id, Contact.email, Value("queued"), Value(0),
                                   Value(""), Value(""))
                    .where(audience_condition(campaign, start, end)).order_by(Contact.id))
            with db.atomic():
                Send.insert_from(rows, fields).on_conflict_ignore().execute()
            # The next range starts at the team's next contact: ids have gaps (other teams' contacts, and
            # the jump a restore makes so that no id is handed out twice: app/backup/restored.py).
            start = (Contact.select(fn.MIN(Contact.id))
                     .where((Contact.team == campaign.team_id) & (Contact.id > end)).scalar())
    total = Send.select(fn.COUNT(Send.id)).where(Send.campaign == campaign.id).scalar() or 0
    Campaign.update(total=total, frozen_at=utcnow(), updated_at=utcnow()).where(Campaign.id == campaign.id).execute()
    campaign.total = total
    return total


# --- Reading the ledger -------------------------------------------------------------

def status_counts(campaign_id):
    """{status: count} of a campaign's sends (one GROUP BY over the (campaign, status) index)."""
    rows = (Send.select(Send.status, fn.COUNT(Send.id)).where(Send.campaign == campaign_id)
            .group_by(Send.status).tuples())
    return dict(rows)


def pending_count(campaign_id):
    return Send.select().where((Send.campaign == campaign_id) & (Send.status << PENDING)).count()


def next_due(campaign_id):
    """When the earliest deferred send may be tried again (None when none is waiting)."""
    return (Send.select(fn.MIN(Send.next_attempt_at))
            .where((Send.campaign == campaign_id) & (Send.status == "deferred")).scalar())


PROBLEMS = ("failed", "bounced")  # the "Failed or bounced" tile counts these; the list behind it shows them


def failed_sends(campaign, limit=50, after_id=0):
    """Failed and bounced sends in id order (keyset pages: pass the last id seen as after_id), with
    their errors: the same statuses the "Failed or bounced" count adds up (it listed only "failed",
    so 200 bounces counted on the tile were missing from the list)."""
    return list(Send.select(Send, Contact.id, Contact.name)
                .join(Contact, JOIN.LEFT_OUTER, on=(Send.contact == Contact.id))
                .where((Send.campaign == campaign) & (Send.status << PROBLEMS) & (Send.id > after_id))
                .order_by(Send.id).limit(limit))


RATE_WINDOW = 60  # seconds of recorded sends the live rate is averaged over
STALLED_AFTER = 10  # seconds without a recorded send after which the rate is 0 (nothing is going out)


def send_rate(campaign, now=None):
    """Messages per second recorded lately: over the last minute, or since the campaign started
    when that is more recent (the first minute no longer reads low), and 0 once nothing was
    recorded for STALLED_AFTER seconds, so an outage never shows the last minute's rate frozen."""
    now = now or utcnow()
    since = now - datetime.timedelta(seconds=RATE_WINDOW)
    if campaign.started_at and campaign.started_at > since:
        since = campaign.started_at
    count, last = (Send.select(fn.COUNT(Send.id), fn.MAX(Send.sent_at))
                   .where((Send.campaign == campaign.id) & (Send.sent_at >= since)).tuples().first())
    if not count or last is None or (now - _datetime(last)).total_seconds() > STALLED_AFTER:
        return 0.0
    return count / max(1.0, (now - since).total_seconds())


def last_retry_due(campaign_id):
    """When the last waiting retry of a campaign is due (None when none waits)."""
    value = (Send.select(fn.MAX(Send.next_attempt_at))
             .where((Send.campaign == campaign_id) & (Send.status == "deferred")).scalar())
    return _datetime(value) if value is not None else None


def _datetime(value):
    """A DateTimeField read through an aggregate comes back as text on SQLite."""
    if isinstance(value, str):
        return datetime.datetime.fromisoformat(value)
    return value


def recover_in_flight(campaign_id):
    """Queue again the sends a dead run had claimed; returns how many.

    Only safe while holding the campaign's run lock (tasks/sending.py): it
    assumes no other run is sending this campaign. These are the messages in
    flight at the crash (at most the engine's unrecorded allowance; the rest were
    claimed but not started): each may or may not have reached its recipient,
    and sending it again is preferred over skipping the person: a skipped
    recipient could never be found again. Their claim already counted as an attempt.
    """
    return (Send.update(status="queued", next_attempt_at=None)
            .where((Send.campaign == campaign_id) & (Send.status == "sending")).execute())
