"""Bulk actions on contacts: validated and recorded (an AuditLog row) when asked for, then carried
out by a task batch by batch, writing its progress into that row."""

from app import events
from app.automations import triggers
from app.consent import suppression
from app.contacts.common import ContactError
from app.contacts.common import NotFound
from app.contacts.common import audit
from app.contacts.lists import get_list
from app.contacts.query import ContactFilter
from app.contacts.query import filtered
from app.contacts.query import positive_int
from app.contacts.query import resolve_filter
from app.contacts.query import walk
from app.contacts.tags import clean_name
from app.contacts.tags import ensure_tags
from app.contacts.tags import find_tag
from app.contacts.tags import name_key
from app.contacts.tags import tag_contacts
from app.contacts.tags import untag_contacts
from app.db import db
from app.models import BLOCKED_STATUSES
from app.models import CONTACT_STATUSES
from app.models import AuditLog
from app.models import Automation
from app.models import AutomationState
from app.models import Contact
from app.models import ContactStatus
from app.models import EventType
from app.models import Subscription
from app.models import Suppression
from app.models import Tag
from app.models import utcnow

MAX_SELECTED = 1000  # ticked ids in one bulk action; larger selections go by filter
BULK_ACTIONS = {"add_to_list": "Add to list", "remove_from_list": "Remove from list",
                "add_tag": "Add tag", "remove_tag": "Remove tag",
                "change_status": "Change status", "start_automation": "Start an automation", "delete": "Delete"}


def start_bulk(team, user, form):
    """Validate a bulk action and record it (AuditLog, state "queued"); the caller enqueues it."""
    data = validate_bulk(team, form)
    return audit(team, user, "contacts.bulk", data["action"], **data)


def validate_bulk(team, form):
    """The recorded form of a bulk action, or ContactError.

    The selection is either the ticked ids (scope "selected") or everything
    matching the filter carried in the form (scope "filter").
    """
    action = form.get("action")
    if action not in BULK_ACTIONS:
        raise ContactError("Choose what to do with the contacts.", field="action")
    scope = form.get("scope") or "selected"
    data = {"action": action, "scope": scope, "state": "queued", "processed": 0, "changed": 0, "skipped": 0}
    if scope == "filter":
        contact_filter = ContactFilter.from_args(form)
        try:
            resolve_filter(team, contact_filter)
        except NotFound:
            raise ContactError("The filter names a list, tag or segment that no longer exists.", field="scope")
        data["filter"] = contact_filter.to_args()
    else:
        ids = sorted({int(value) for value in form.getlist("ids") if str(value).isdigit()})
        if not ids:
            raise ContactError("Tick at least one contact, or choose “all contacts matching this filter”.",
                               field="ids")
        if len(ids) > MAX_SELECTED:
            raise ContactError(f"Tick at most {MAX_SELECTED:,} contacts, or choose “all contacts matching "
                               "this filter”.", field="ids")
        data["ids"] = ids
    if action in ("add_to_list", "remove_from_list"):
        mailing_list = get_list(team, positive_int(form.get("list_id")))
        if mailing_list is None:
            raise ContactError("Choose a list.", field="list_id")
        data["list_id"] = mailing_list.id
        data["list"] = mailing_list.name
    # "tag_name", not "tag": the form also carries the filter, whose "tag" is the id of the tag to match.
    if action == "add_tag":
        # A new name is fine: the tag is made when the action runs, so a cancelled one leaves none behind.
        data["tag"] = clean_name(form.get("tag_name"), field="tag_name")
    if action == "remove_tag":
        tag = find_tag(team, form.get("tag_name"))
        if tag is None:
            raise ContactError("Choose a tag the contacts have: no tag has that name.", field="tag_name")
        data["tag_id"], data["tag"] = tag.id, tag.name
    if action == "start_automation":
        automation = _live_automation(team, positive_int(form.get("automation_id")))
        if automation is None:
            raise ContactError("Choose a live automation (a draft or paused one starts nobody).", field="automation_id")
        data["automation_id"], data["automation"] = automation.id, automation.name
    if action == "change_status":
        # "new_status", not "status": the form also carries the filter, whose "status" is the one to match.
        if form.get("new_status") not in CONTACT_STATUSES:
            raise ContactError("Choose the new status.", field="new_status")
        data["status"] = form.get("new_status")
    return data


def bulk_count(team, form):
    """How many contacts a bulk action would touch (for the confirmation page)."""
    if (form.get("scope") or "selected") == "filter":
        contact_filter = ContactFilter.from_args(form)
        query, _ = filtered(team, resolve_filter(team, contact_filter), (Contact.id,))
        return query.count()
    ids = {int(value) for value in form.getlist("ids") if str(value).isdigit()}
    return Contact.select().where((Contact.team == team) & (Contact.id << list(ids))).count() if ids else 0


def _save_job(job, data):
    AuditLog.update(data=data).where(AuditLog.id == job.id).execute()


def run_bulk(job_id, after_batch=None):
    """Carry out a recorded bulk action, batch by batch, one transaction per batch.

    Progress (processed, changed, skipped) is written after every batch, so
    the page can show it and a crash leaves an honest record of what was done.
    `after_batch(changed)` is called after each batch's commit that changed something
    (the caller has the automation runs it started moved meanwhile).
    """
    job = AuditLog.get_or_none(AuditLog.id == job_id)
    if job is None or job.action != "contacts.bulk":
        return
    data = job.data
    if data.get("state") not in ("queued", "running"):
        return  # already done: running it again would only add events
    team = job.team
    data["state"] = "running"
    _save_job(job, data)
    try:
        if "ids" in data:
            batches = walk(team, ids=data["ids"])
        else:
            batches = walk(team, resolve_filter(team, ContactFilter.from_args(data["filter"])))
        apply = _BULK[data["action"]](team, job, data)
        for contacts in batches:
            with db.atomic():
                changed = apply(contacts)
            data["processed"] += len(contacts)
            data["changed"] += changed
            data["skipped"] += len(contacts) - changed
            _save_job(job, data)
            if changed and after_batch is not None:
                after_batch(changed)
    except Exception as exc:
        data["state"] = "failed"
        data["error"] = str(exc) or exc.__class__.__name__
        _save_job(job, data)
        raise
    data["state"] = "done"
    data["finished_at"] = utcnow().isoformat(timespec="seconds")
    _save_job(job, data)


def _bulk_add(team, job, data):
    mailing_list = get_list(team, data["list_id"])
    if mailing_list is None:
        raise ContactError("The list was deleted while the action was running.")
    blocked = suppression.Checker(team.id)

    def apply(contacts):
        ids = [contact.id for contact in contacts]
        existing = {row[0] for row in Subscription.select(Subscription.contact).where(
            (Subscription.list == mailing_list) & (Subscription.contact << ids)).tuples()}
        fresh = [contact.id for contact in contacts if contact.id not in existing
                 and contact.status not in BLOCKED_STATUSES and not blocked(contact.email)]
        now = utcnow()
        rows = [{"contact": contact_id, "list": mailing_list.id, "status": "subscribed", "created_at": now}
                for contact_id in fresh]
        for start in range(0, len(rows), 100):
            Subscription.insert_many(rows[start:start + 100]).execute()
        events.record_for(team, fresh, EventType.SUBSCRIBED,
                          {"list_id": mailing_list.id, "list": mailing_list.name, "source": "bulk"})
        if fresh:  # in the batch's transaction: a batch that rolls back starts no run
            triggers.list_joined(team, fresh, mailing_list.id, now, source="bulk")
        return len(fresh)
    return apply


def _bulk_remove(team, job, data):
    list_id = data["list_id"]

    def apply(contacts):
        ids = [contact.id for contact in contacts]
        on_list = [row[0] for row in Subscription.select(Subscription.contact).where(
            (Subscription.list == list_id) & (Subscription.contact << ids)).tuples()]
        if on_list:
            Subscription.delete().where((Subscription.list == list_id) & (Subscription.contact << on_list)).execute()
            events.record_for(team, on_list, EventType.REMOVED_FROM_LIST,
                              {"list_id": list_id, "list": data.get("list", "")})
            triggers.left_list_many(team, on_list, list_id)
        return len(on_list)
    return apply


def _bulk_status(team, job, data):
    status = data["status"]
    blocked = suppression.Checker(team.id) if status == ContactStatus.ACTIVE else None
    by = job.user_id

    def apply(contacts):
        changing = [contact for contact in contacts if contact.status != status
                    and not (blocked and blocked(contact.email))]
        if not changing:
            return 0
        now = utcnow()
        Contact.update(status=status, updated_at=now).where(Contact.id << [c.id for c in changing]).execute()
        events.record_many((team, c.id, None, EventType.STATUS_CHANGED, now,
                            {"from": c.status, "to": status, "by": by, "bulk": job.id}) for c in changing)
        if status == ContactStatus.SUPPRESSED:
            hashes = [{"team": team.id, "kind": "email", "value_hash": suppression.value_hash(team.id, "email", c.email),
                       "hint": suppression.hint("email", c.email), "reason": "manual"} for c in changing]
            for start in range(0, len(hashes), 100):
                Suppression.insert_many(hashes[start:start + 100]).on_conflict_ignore().execute()
        if status != ContactStatus.ACTIVE:
            triggers.contacts_stopped([c.id for c in changing], status, now)
        return len(changing)
    return apply


def _bulk_add_tag(team, job, data):
    tag = ensure_tags(team, [data["tag"]])[name_key(data["tag"])]

    def apply(contacts):
        return tag_contacts(team, tag, [contact.id for contact in contacts])
    return apply


def _bulk_remove_tag(team, job, data):
    tag = Tag.get_or_none((Tag.id == data["tag_id"]) & (Tag.team == team))
    if tag is None:
        raise ContactError("The tag was deleted while the action was running.")

    def apply(contacts):
        return untag_contacts(team, tag, [contact.id for contact in contacts])
    return apply


def _live_automation(team, automation_id):
    if automation_id is None:
        return None
    return Automation.get_or_none((Automation.id == automation_id) & (Automation.team == team)
                                  & (Automation.state == AutomationState.LIVE))


def _bulk_start(team, job, data):
    automation = _live_automation(team, data["automation_id"])
    if automation is None:
        raise ContactError("The automation was paused or deleted while the action was running.")

    def apply(contacts):
        return triggers.start_manually(automation, [contact.id for contact in contacts], job.user_id)
    return apply


def _bulk_delete(team, job, data):
    def apply(contacts):
        ids = [contact.id for contact in contacts]
        triggers.contacts_deleting(ids)
        return Contact.delete().where((Contact.team == team) & (Contact.id << ids)).execute()
    return apply


_BULK = {"add_to_list": _bulk_add, "remove_from_list": _bulk_remove, "add_tag": _bulk_add_tag,
         "remove_tag": _bulk_remove_tag, "change_status": _bulk_status, "start_automation": _bulk_start,
         "delete": _bulk_delete}
