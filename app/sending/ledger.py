"""The send ledger: one Send row per campaign and contact, the source of truth for sending.

freeze_audience() materialises the audience when a campaign is published,
with INSERT ... SELECT in ranges of contact ids, so the work happens inside
the database and memory stays flat however large the audience is. The
UNIQUE (campaign, contact) index makes it idempotent: freezing twice, or
resuming a freeze cut short by a crash, never adds anyone twice.

Statuses of a Send (models.SendStatus). This module is the only writer of
Send rows (tests/test_structure_ledger.py): each move below is one of its
functions, under "Writing the ledger".

    queued ──claim──▶ sending ──record──▶ sent | bounced | failed | skipped
      ▲                  │   (skip_claimed)
      └── deferred ◀─────┘  record: a temporary failure, retried at next_attempt_at
    held: the rest of an A/B test's audience (hold_sample), queued for the
          winner by release_to_winner. A send-time test's later variants wait as
          deferred until their time (wait_for_send_time).
    After the run: a late bounce or complaint (mark_bounced, fail_for_account),
    the contact leaving (skip_for_contact, skip_erased), failed ones sent again
    (retry_failed).

"sending" (SendStatus.CLAIMED) means claimed by a run: written (with
attempts + 1, and the claim's expiry in next_attempt_at) before the SMTP
conversation starts. The run extends its claims every second; a claim that
expired was held by a run that died, and is queued again (recover_in_flight). Most of those never left; the ones that can reach someone
twice are the deliveries started and not yet recorded, which the engine keeps
to a small number (SEND_MAX_UNRECORDED, app/sending/engine.py).
"""
import datetime

from peewee import JOIN
from peewee import Case
from peewee import Value
from peewee import fn

from app.db import IdList
from app.db import db
from app.db import plain_rows
from app.db import refresh_statistics
from app.db import skip_locked
from app.db import update_many
from app.errors import Problem
from app.models import Campaign
from app.models import Contact
from app.models import ContactStatus
from app.models import Event
from app.models import MailingList
from app.models import Segment
from app.models import Send
from app.models import SendStatus
from app.models import Subscription
from app.models import utcnow
from app.segments.compiler import SegmentError
from app.segments.compiler import compile_rules
from app.senders import accounts as accounts_service
from app.senders import domains as domains_service
from app.senders import warmup

CHUNK = 50_000  # contact ids per INSERT ... SELECT (one short transaction each)
CLAIM_SECONDS = 15  # a claim nobody extends for this long belonged to a dead run

# A new Send row's columns: every NOT NULL one, as a prepared INSERT writes no Python default.
NEW_SEND_FIELDS = (Send.campaign, Send.contact, Send.email, Send.status, Send.attempts, Send.message_id, Send.error)
PENDING = (SendStatus.QUEUED, SendStatus.DEFERRED, SendStatus.CLAIMED)  # work left for the engine
# Not claimed by a run: a change of the contact after publishing can still take these out.
WAITING = (SendStatus.QUEUED, SendStatus.DEFERRED, SendStatus.HELD)


class LedgerError(Problem):
    """The audience cannot be resolved, with a message for the person."""


def audience_of(campaign):
    selected = campaign.audience
    if isinstance(selected, str):  # stored text that is not JSON
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
    conditions = []
    for segment in Segment.select().where((Segment.team == team_id) & (Segment.id << segment_ids)):
        try:
            conditions.append(compile_rules(team_id, segment.rules))
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
    condition = (Contact.team == team_id) & (Contact.status == ContactStatus.ACTIVE)
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
    return (Contact.id << parent_sends.where(Send.status == SendStatus.SENT)) & Contact.id.not_in(opened)


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
    if condition is not None and engaged_first(campaign):
        _freeze_engaged_first(campaign, min(chunk, ENGAGED_CHUNK))
    elif condition is not None:
        refresh_statistics(Contact, Subscription)
        bounds = (Contact.select(fn.MIN(Contact.id), fn.MAX(Contact.id))
                  .where(Contact.team == campaign.team_id).tuples().first())
        start, hi = bounds if bounds and bounds[0] is not None else (1, 0)
        fields = list(NEW_SEND_FIELDS)
        while start is not None and start <= hi:
            end = start + chunk - 1
            rows = (Contact.select(Value(campaign.id), Contact.id, Contact.email, Value(SendStatus.QUEUED.value),
                                   Value(0), Value(""), Value(""))
                    .where(audience_condition(campaign, start, end)).order_by(Contact.id))
            with db.atomic():
                Send.insert_from(rows, fields).on_conflict_ignore().execute()
            # The next range starts at the team's next contact: ids have gaps (other teams' contacts, and
            # the jump a restore makes so that no id is handed out twice: app/backup/restored.py).
            start = (Contact.select(fn.MIN(Contact.id))
                     .where((Contact.team == campaign.team_id) & (Contact.id > end)).scalar())
        refresh_statistics(Send)  # the runs claim from these rows next
    total = Send.select(fn.COUNT(Send.id)).where(Send.campaign == campaign.id).scalar() or 0
    Campaign.update(total=total, frozen_at=utcnow(), updated_at=utcnow()).where(Campaign.id == campaign.id).execute()
    campaign.total = total
    return total


ENGAGED_CHUNK = 5_000  # contact ids per INSERT ... SELECT in engagement order (bound parameters, not a range)
ENGAGEMENT_ORDER = (Contact.last_activity_at.desc(nulls="LAST"), Contact.id)


def engaged_first(campaign):
    """Whether the campaign goes out most engaged first: when a warm-up plan may hold it back (an active
    account's, or its From domain's). Chosen at the freeze, whatever the audience's size: the allowance
    is shared with the team's other campaigns and transactional mail, so whether this one fits in
    today's allowance is only known as it sends; and the order costs one sorted read of the audience."""
    plans = [account for account in accounts_service.active_accounts(campaign.team_id)
             if warmup.limit(account) is not None]
    return bool(plans) or warmup.limit(domains_service.domain_for_sender(campaign.team_id,
                                                                         campaign.from_email)) is not None


def _freeze_engaged_first(campaign, chunk):
    """freeze_audience's writes in engagement order: Send ids, which the runs claim in order, follow
    the contacts' last human open or click (Contact.last_activity_at, newest first; never engaged
    last; ties by contact id). The order is read once (ids only), then written in slices of it, each
    an INSERT ... SELECT in the same order in its own short transaction."""
    order = [contact_id for (contact_id,) in Contact.select(Contact.id).where(audience_condition(campaign))
             .order_by(*ENGAGEMENT_ORDER).tuples()]
    fields = list(NEW_SEND_FIELDS)
    for start in range(0, len(order), chunk):
        ids = order[start:start + chunk]
        rows = (Contact.select(Value(campaign.id), Contact.id, Contact.email, Value(SendStatus.QUEUED.value),
                               Value(0), Value(""), Value(""))
                # Read with the whole audience condition a moment ago: each slice checks only that the
                # contact is still active (the runs check suppression again before each message).
                .where((Contact.team == campaign.team_id) & (Contact.status == ContactStatus.ACTIVE)
                       & Contact.id.in_(ids))
                .order_by(*ENGAGEMENT_ORDER))
        with db.atomic():
            Send.insert_from(rows, fields).on_conflict_ignore().execute()
    refresh_statistics(Send)


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
            .where((Send.campaign == campaign_id) & (Send.status == SendStatus.DEFERRED)).scalar())


def claims_expire_at(campaign_id):
    """When the claim of a run that stops extending it would run out first (None when none is held)."""
    return _datetime(Send.select(fn.MIN(Send.next_attempt_at))
                     .where((Send.campaign == campaign_id) & (Send.status == SendStatus.CLAIMED)).scalar())


# The "Failed or bounced" tile counts these; the list behind it shows them.
PROBLEMS = (SendStatus.FAILED, SendStatus.BOUNCED)


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
             .where((Send.campaign == campaign_id) & (Send.status == SendStatus.DEFERRED)).scalar())
    return _datetime(value) if value is not None else None


def _datetime(value):
    """A DateTimeField read through an aggregate comes back as text on SQLite."""
    if isinstance(value, str):
        return datetime.datetime.fromisoformat(value)
    return value


def recover_in_flight(campaign_id, now=None):
    """Queue again the sends whose claim expired (their run died, or older rows without an expiry);
    returns how many.

    A live run extends its claims every second (extend_claims), so only a dead run's claims expire.
    These are the messages in flight when it died (at most the engine's unrecorded allowance; the
    rest were claimed but not started): each may or may not have reached its recipient, and sending
    it again is preferred over skipping the person: a skipped recipient could never be found again.
    Their claim already counted as an attempt.
    """
    now = now or utcnow()
    return (Send.update(status=SendStatus.QUEUED, next_attempt_at=None)
            .where((Send.campaign == campaign_id) & (Send.status == SendStatus.CLAIMED)
                   & (Send.next_attempt_at.is_null() | (Send.next_attempt_at < now))).execute())


# --- Writing the ledger -------------------------------------------------------------
# Every change of a Send row after freeze_audience is one of these moves. The engine's are batched
# (it records hundreds of results a second): claim and record write through executemany statements
# built once by app.db, inside the caller's transaction.

def claim(campaign_id, limit, now=None, lease_seconds=CLAIM_SECONDS):
    """Claim up to `limit` sends of the campaign for a run: retries that are due first, then queued
    ones, in id order. Each becomes CLAIMED with its attempt counted, before any SMTP conversation
    starts, and the campaign's cursor moves past the queued ones. A claim expires `lease_seconds`
    later (next_attempt_at) unless the run extends it (extend_claims); an expired one goes back to
    the queue (recover_in_flight). Several runs claim at once without taking the same row: the
    SELECTs skip rows another claim holds (app.db.skip_locked). Returns the claimed ids (in id
    order); runs inside the caller's transaction, which should also read what it needs of them."""
    now = now or utcnow()
    campaign = Send.campaign == campaign_id
    ids = [i for (i,) in skip_locked(
        Send.select(Send.id)
        .where(campaign & (Send.status == SendStatus.DEFERRED) & (Send.next_attempt_at <= now))
        .order_by(Send.id).limit(limit)).tuples()]
    if len(ids) < limit:
        queued = [i for (i,) in skip_locked(
            Send.select(Send.id).where(campaign & (Send.status == SendStatus.QUEUED))
            .order_by(Send.id).limit(limit - len(ids))).tuples()]
        if queued:
            (Campaign.update(cursor=queued[-1])
             .where((Campaign.id == campaign_id) & (Campaign.cursor < queued[-1])).execute())
        ids += queued
    if ids:
        (Send.update(status=SendStatus.CLAIMED, attempts=Send.attempts + 1,
                     next_attempt_at=now + datetime.timedelta(seconds=lease_seconds))
         .where((Send.id << IdList(ids)) & (Send.status << (SendStatus.QUEUED, SendStatus.DEFERRED))).execute())
    return ids


def extend_claims(send_ids, until):
    """The run holding these claims is alive: they expire at `until` now. Returns how many it still
    holds (a claim that expired and went back to the queue is not taken back)."""
    send_ids = list(send_ids)
    extended = 0
    for start in range(0, len(send_ids), 500):
        extended += (Send.update(next_attempt_at=until)
                     .where((Send.id << IdList(send_ids[start:start + 500])) & (Send.status == SendStatus.CLAIMED))
                     .execute())
    return extended


_built = {}


def _statements():
    """The executemany statements of record(), by outcome; each row ends with the send id. Built
    once per database kind: the engine records a result batch many times a second."""
    found = _built.get(db.param)
    if found is None:
        found = _built[db.param] = _build_statements()
    return found


def _build_statements():
    key, error = Send.id, Send.error
    return {
        "sent": update_many([Send.sent_at, Send.message_id, Send.smtp_account], key,
                            fixed={Send.status: SendStatus.SENT, error: ""}),
        "deferred": update_many([Send.next_attempt_at, error, Send.smtp_account], key,
                                fixed={Send.status: SendStatus.DEFERRED}),
        "failed": update_many([error, Send.smtp_account], key,
                              fixed={Send.status: SendStatus.FAILED, Send.next_attempt_at: None}),
        "bounced": update_many([error, Send.smtp_account], key,
                               fixed={Send.status: SendStatus.BOUNCED, Send.next_attempt_at: None}),
        "skipped": update_many([error], key, fixed={Send.status: SendStatus.SKIPPED}),
    }


def record(cursor=None, sent=(), deferred=(), failed=(), bounced=(), skipped=(), requeued=()):
    """Write a run's results for claimed sends, inside the caller's transaction (`cursor`: the
    caller's, else a new one). Rows are tuples ending with the send id:

        sent      (sent_at, message_id, smtp_account_id, send_id)   its error cleared
        deferred  (next_attempt_at, error, smtp_account_id, send_id) tried again then
        failed    (error, smtp_account_id, send_id)                  no attempt left
        bounced   (error, smtp_account_id, send_id)                  refused for good (5xx)
        skipped   (error, send_id)                                   not sent, and never will be
        requeued  send ids: claimed but never started; queued again, the attempt not counted
    """
    statements = _statements()
    for kind, rows in (("sent", sent), ("deferred", deferred), ("failed", failed), ("bounced", bounced),
                       ("skipped", skipped)):
        if rows:
            statements[kind].run(rows, cursor)
    requeued = list(requeued)
    for start in range(0, len(requeued), 500):
        (Send.update(status=SendStatus.QUEUED, next_attempt_at=None,
                     attempts=Case(None, [(Send.attempts > 0, Send.attempts - 1)], 0))
         .where((Send.id << requeued[start:start + 500]) & (Send.status == SendStatus.CLAIMED)).execute())


def skip_claimed(rows, cursor=None):
    """Claimed sends the run will not send, as (reason, send_id) rows: the contact was deleted, is no
    longer active, or its address is suppressed (the engine checks at claim time)."""
    if rows:
        _statements()["skipped"].run(rows, cursor)


def skip_for_contact(send_ids, reason):
    """The contact left the audience after publishing (unsubscribed, left the lists): its waiting
    sends are skipped with `reason`. A send a run has claimed is left to the run. Returns how many."""
    return (Send.update(status=SendStatus.SKIPPED, error=reason, next_attempt_at=None)
            .where((Send.id << list(send_ids)) & (Send.status << WAITING)).execute())


def skip_erased(contact_id, hint):
    """The contact is erased: its queued and deferred sends are skipped, and every send of it keeps
    only the address's hint (the counts stay, the address goes)."""
    (Send.update(status=SendStatus.SKIPPED, error="The contact was erased.")
     .where((Send.contact == contact_id) & (Send.status << (SendStatus.QUEUED, SendStatus.DEFERRED))).execute())
    Send.update(email=hint).where(Send.contact == contact_id).execute()


def mark_bounced(send_id, error):
    """A refusal for good, found during sending or reported later (a DSN, a webhook): the send is
    bounced unless it already was or was skipped; a failed one becomes bounced, which says more."""
    return bool(Send.update(status=SendStatus.BOUNCED, error=str(error)[:1000], next_attempt_at=None)
                .where((Send.id == send_id) & (Send.status << (SendStatus.SENT, SendStatus.CLAIMED,
                                                               SendStatus.DEFERRED, SendStatus.QUEUED,
                                                               SendStatus.FAILED))).execute())


def fail_for_account(send_id, error):
    """The refusal meant our SMTP account hit its own limit, not a problem of the address: the send
    fails with `error` (it may be sent again with retry_failed). True when it changed (not already
    failed, bounced or skipped), so the caller counts it once."""
    return bool(Send.update(status=SendStatus.FAILED, error=str(error)[:1000], next_attempt_at=None)
                .where((Send.id == send_id) & (Send.status << (SendStatus.SENT, SendStatus.CLAIMED,
                                                               SendStatus.DEFERRED, SendStatus.QUEUED)))
                .execute())


def retry_failed(campaign_id):
    """Queue the campaign's failed sends again as a fresh start (attempts and backoff from zero, the
    error cleared); returns how many."""
    return (Send.update(status=SendStatus.QUEUED, next_attempt_at=None, error="", attempts=0)
            .where((Send.campaign == campaign_id) & (Send.status == SendStatus.FAILED)).execute())


def hold_sample(campaign_id, variants, cutoff):
    """Split an A/B test at publish: the sends up to id `cutoff` (the test sample) go to the variants in
    turn by id (with 4 variants, ids 8, 9, 10, 11 go to A, B, C, D), and the queued rest are held until
    the winner is known."""
    sample = (Send.campaign == campaign_id) & (Send.id <= cutoff)
    count = len(variants)
    # id mod count, written with integer division (peewee's % operator means LIKE, not modulo).
    turn = Send.id - (Send.id / count) * count
    for index, variant in enumerate(variants):
        Send.update(variant=variant).where(sample & (turn == index)).execute()
    (Send.update(status=SendStatus.HELD)
     .where((Send.campaign == campaign_id) & (Send.id > cutoff) & (Send.status == SendStatus.QUEUED)).execute())


def wait_for_send_time(campaign_id, variant, send_at):
    """A send-time test: the variant's share of the sample waits until `send_at` (UTC). The sends wait as
    deferred ones do, so the engine claims them when they are due and the run in between sleeps or ends
    with "come back then"; their attempts stay at 0. Returns how many wait."""
    return (Send.update(status=SendStatus.DEFERRED, next_attempt_at=send_at)
            .where((Send.campaign == campaign_id) & (Send.variant == variant)
                   & (Send.status == SendStatus.QUEUED)).execute())


def release_to_winner(campaign_id, winner):
    """The A/B test is decided: the held sends are queued with the winning variant."""
    return (Send.update(variant=winner, status=SendStatus.QUEUED)
            .where((Send.campaign == campaign_id) & (Send.status == SendStatus.HELD)).execute())


# --- Automation email steps (app/automations/mail.py) -------------------------------

FINISHED = (SendStatus.SENT, SendStatus.FAILED, SendStatus.BOUNCED, SendStatus.SKIPPED)


def queue_one(campaign_id, contact_id, email):
    """One queued send of an automation email step's hidden campaign for the contact; returns its id. Called inside
    the caller's transaction. Send is unique per (campaign, contact): a contact who enters the automation again gets
    its row queued again once the earlier message finished (attempts from zero); a row still waiting to go is the
    message of this entry too, so the contact never gets two at once."""
    mine = (Send.campaign == campaign_id) & (Send.contact == contact_id)
    found = Send.select(Send.id).where(mine).first()
    if found is None:
        Send.insert(campaign=campaign_id, contact=contact_id, email=email, status=SendStatus.QUEUED, attempts=0,
                    message_id="", error="").on_conflict_ignore().execute()
        Campaign.update(total=Campaign.total + 1).where(Campaign.id == campaign_id).execute()
        return Send.select(Send.id).where(mine).scalar()
    _requeue(found.id, email)
    return found.id


def _requeue(send_id, email):
    (Send.update(status=SendStatus.QUEUED, attempts=0, error="", next_attempt_at=None, email=email, variant=None)
     .where((Send.id == send_id) & (Send.status << FINISHED)).execute())


def queue_many(campaign_id, recipients, chunk=500):
    """queue_one for many contacts of one hidden campaign (a welcome burst), in a handful of statements; `recipients`
    is [(contact id, email)]; returns how many rows were added. Called inside the caller's transaction. The same
    rules as queue_one: new rows in one INSERT ... SELECT from the contacts, as a campaign's audience is frozen (3-4 µs
    a row against 12.5 for the same rows bound one by one, docs/benchmarks.md), a finished row of an earlier entry
    queued again, a row still waiting to go left as it is (it is this entry's message too). The caller finds each
    contact's row by (campaign, contact), its unique key."""
    emails = dict(recipients)
    ids = list(emails)
    found = {}
    for start in range(0, len(ids), chunk):
        found.update(plain_rows(Send.select(Send.contact, Send.id).where(
            (Send.campaign == campaign_id) & (Send.contact << IdList(ids[start:start + chunk])))))
    for contact_id, send_id in found.items():  # re-entries: rare in a burst, one statement each as in queue_one
        _requeue(send_id, emails[contact_id])
    new = [contact_id for contact_id in ids if contact_id not in found]
    added = 0
    for start in range(0, len(new), chunk):
        rows = Contact.select(Value(campaign_id), Contact.id, Contact.email, Value(SendStatus.QUEUED.value), Value(0),
                              Value(""), Value("")).where(Contact.id << IdList(new[start:start + chunk]))
        # The driver's row count: the rows inserted, a contact another process queued meanwhile left out (peewee's
        # execute() of an INSERT answers SQLite's last row id instead).
        added += db.execute(Send.insert_from(rows, list(NEW_SEND_FIELDS)).on_conflict_ignore()).rowcount
    if added:
        Campaign.update(total=Campaign.total + added).where(Campaign.id == campaign_id).execute()
    return added
