"""Address checks as the contacts area keeps them: one contact's "Validate" and "Validate this list".

The checking itself is app.deliverability.validation's (syntax, MX/A and null MX, disposable domains, role
accounts, typos); this module stores each verdict on its contact (Contact.validation_*) and runs a list's
check as a ValidationJob: the task (tasks/contacts.py) takes the list's contacts in id order, CHUNK at a
time through validate_many (one concurrent DNS batch a chunk), and writes the verdicts and the job's
progress in one transaction per chunk, so a job that stops keeps what it checked and its counts agree.

One job per list at a time: the job holds its list's id in the unique `active_list` column while queued or
running. A job whose worker died (no heartbeat for STALE_SECONDS) no longer blocks a new one.
"""
import datetime
import logging

from peewee import IntegrityError

from app.contacts.common import ContactError
from app.db import db
from app.db import update_rows
from app.deliverability import validation
from app.models import Contact
from app.models import Subscription
from app.models import ValidationJob
from app.models import utcnow

CHUNK = 500
PAGE = 50
STALE_SECONDS = 600
STATUSES = ("valid", "risky", "invalid")
STATUS_LABELS = {"valid": "Valid", "risky": "Risky", "invalid": "Invalid", "": "Not checked"}
ACTIVE = ("queued", "running")
log = logging.getLogger(__name__)


def reason_words(codes):
    """Stored reasons ("role,typo" or a tuple) as a list of phrases, each starting with a capital."""
    if isinstance(codes, str):
        codes = [code for code in codes.split(",") if code]
    return [_capital(validation.REASON_WORDS.get(code, code)) for code in codes]


def _capital(text):
    return text[:1].upper() + text[1:]


def _stored(verdict):
    return verdict.status, ",".join(verdict.reasons), verdict.suggestion or ""


# --- One contact ----------------------------------------------------------------

def validate_contact(contact):
    """Check the contact's address now and store the verdict on it; returns the Verdict."""
    verdict = validation.validate(contact.email)
    status, reasons, suggestion = _stored(verdict)
    now = utcnow()
    Contact.update(validation_status=status, validation_reasons=reasons, validation_suggestion=suggestion,
                   validation_checked_at=now).where(Contact.id == contact.id).execute()
    contact.validation_status, contact.validation_reasons = status, reasons
    contact.validation_suggestion, contact.validation_checked_at = suggestion, now
    return verdict


# --- A list's job -----------------------------------------------------------------

def _members(mailing_list):
    """The list's contacts (every subscription but an unsubscribed one), as the list page counts them."""
    return (Contact.select(Contact.id, Contact.email)
            .join(Subscription, on=(Subscription.contact == Contact.id))
            .where((Subscription.list == mailing_list.id) & (Subscription.status != "unsubscribed")))


def latest_job(mailing_list):
    return (ValidationJob.select().where(ValidationJob.list == mailing_list.id)
            .order_by(ValidationJob.id.desc()).first())


def is_active(job):
    return job is not None and job.state in ACTIVE


def _stale(job, now):
    beat = job.heartbeat_at or job.created_at
    return now - beat > datetime.timedelta(seconds=STALE_SECONDS)


def start_job(team, mailing_list, user=None):
    """A queued job for the list (the caller enqueues tasks.contacts.validate_list); ContactError when one
    is already queued or running for it."""
    now = utcnow()
    running = ValidationJob.get_or_none(ValidationJob.active_list == mailing_list.id)
    if running is not None and _stale(running, now):
        _finish(running, "failed", "The check stopped: its worker is gone. Start it again.")
    total = _members(mailing_list).count()
    try:
        with db.atomic():
            return ValidationJob.create(team=team, list=mailing_list, user=getattr(user, "id", None),
                                        active_list=mailing_list.id, total=total, created_at=now,
                                        heartbeat_at=now)
    except IntegrityError:
        raise ContactError("This list is already being checked. Wait for it to finish, or cancel it.") from None


def cancel_job(job):
    """Stop a queued or running job after its current chunk; what it checked stays. False when it had ended."""
    return _finish(job, "cancelled") > 0


def _finish(job, state, error=""):
    return (ValidationJob.update(state=state, error=error, active_list=None, finished_at=utcnow())
            .where((ValidationJob.id == job.id) & (ValidationJob.state << ACTIVE)).execute())


def run_job(job_id, chunk=CHUNK):
    """The task's work: every chunk of the list's contacts after the job's cursor, until none is left or the
    job is cancelled. A failure ends the job as failed with the reason; the chunks before it stay stored."""
    job = ValidationJob.get_or_none(ValidationJob.id == job_id)
    if job is None or not is_active(job):
        return
    now = utcnow()
    claimed = (ValidationJob.update(state="running", started_at=job.started_at or now, heartbeat_at=now)
               .where((ValidationJob.id == job.id) & (ValidationJob.state << ACTIVE)).execute())
    if not claimed:
        return
    job = ValidationJob.get_by_id(job.id)
    try:
        while _run_chunk(job, chunk):
            job = ValidationJob.get_by_id(job.id)
    except Exception as exc:  # noqa: BLE001 - any failure ends the job with its reason, for the page to show
        log.exception("validation job %s failed", job.id)
        _finish(job, "failed", f"{type(exc).__name__}: {exc}"[:500])
        return
    _finish(job, "done")


def _run_chunk(job, chunk):
    """Check and store one chunk; False when there is nothing left or the job was cancelled meanwhile."""
    rows = list(_members(job.list).where(Contact.id > job.after_id).order_by(Contact.id).limit(chunk).tuples())
    if not rows:
        return False
    verdicts = validation.validate_many([email for _, email in rows])
    now = utcnow()
    counts = dict.fromkeys(STATUSES, 0)
    reasons = dict(job.reasons or {})
    for verdict in verdicts:
        counts[verdict.status] += 1
        for code in verdict.reasons:
            reasons[code] = reasons.get(code, 0) + 1
    fields = (Contact.validation_status, Contact.validation_reasons, Contact.validation_suggestion,
              Contact.validation_checked_at)
    with db.atomic():
        moved = (ValidationJob.update(done=ValidationJob.done + len(rows), after_id=rows[-1][0], reasons=reasons,
                                      heartbeat_at=now, valid=ValidationJob.valid + counts["valid"],
                                      risky=ValidationJob.risky + counts["risky"],
                                      invalid=ValidationJob.invalid + counts["invalid"])
                 .where((ValidationJob.id == job.id) & (ValidationJob.state == "running")).execute())
        if not moved:
            return False  # cancelled while this chunk was checked: its verdicts are not counted, nor stored
        update_rows(fields, Contact.id).run([_stored(verdict) + (now, contact_id)
                                            for (contact_id, _), verdict in zip(rows, verdicts)])
    return True


# --- Results ----------------------------------------------------------------------

def progress(job):
    """Percent done, 0-100 (a list that shrank meanwhile may do more than its total: 100)."""
    if not job.total:
        return 100 if job.state == "done" else 0
    return min(100, round(100 * job.done / job.total))


def flagged(job, status=None, after=0, limit=PAGE):
    """(contacts, next cursor) of the job's risky and invalid contacts (or one `status`), in id order: the
    list's contacts checked since the job started with that verdict. The cursor is None on the last page."""
    statuses = [status] if status in ("risky", "invalid") else ["invalid", "risky"]
    since = job.started_at or job.created_at
    query = (Contact.select(Contact.id, Contact.email, Contact.name, Contact.validation_status,
                            Contact.validation_reasons, Contact.validation_suggestion)
             .join(Subscription, on=(Subscription.contact == Contact.id))
             .where((Subscription.list == job.list_id) & (Contact.validation_status << statuses)
                    & (Contact.validation_checked_at >= since) & (Contact.id > (after or 0)))
             .order_by(Contact.id).limit(limit + 1))
    contacts = list(query)
    more = len(contacts) > limit
    contacts = contacts[:limit]
    return contacts, (contacts[-1].id if more else None)


def reason_counts(job):
    """[(code, words, count)], most first."""
    counts = job.reasons or {}
    return sorted(((code, _capital(validation.REASON_WORDS.get(code, code)), count)
                   for code, count in counts.items() if count),
                  key=lambda item: (-item[2], item[0]))
