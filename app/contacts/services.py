"""Contacts: add, edit, change the status of and delete one contact, and its subscriptions.

The rest of the audience has a module each beside this one: lists.py, fields.py (custom
fields), tags.py, query.py (filter, search and keyset pages), bulk.py, export.py and timeline.py;
common.py holds the ContactError they all raise.

Every function takes the team first and scopes every query by it, so an id
from another team is simply not found. Bad input raises ContactError with a
message for the person and, where it belongs to one form field, that field.
"""

from peewee import IntegrityError
from peewee import fn

from app import addresses
from app import events
from app.automations import triggers
from app.consent import suppression
from app.contacts.common import ContactError
from app.contacts.common import audit
from app.contacts.fields import fields_of
from app.contacts.fields import parse_value
from app.contacts.lists import lists_of
from app.db import db
from app.models import BLOCKED_STATUSES
from app.models import CONTACT_STATUSES
from app.models import Contact
from app.models import ContactStatus
from app.models import EventType
from app.models import MailingList
from app.models import Subscription
from app.models import utcnow

STATUS_LABELS = {"active": "Active", "unsubscribed": "Unsubscribed", "bounced": "Bounced",
                 "complained": "Complained", "suppressed": "Suppressed"}


def get_contact(team, contact_id):
    return Contact.get_or_none((Contact.id == contact_id) & (Contact.team == team))


def attributes_of(contact):
    value = contact.attributes
    return value if isinstance(value, dict) else {}


def normalise_email(address):
    """(email, domain): syntax-checked without DNS, lower-cased; or ContactError."""
    address = (address or "").strip()
    if not address:
        raise ContactError("Enter an email address.", field="email")
    try:
        email = addresses.normalise_email(address)
    except addresses.InvalidEmail as exc:
        raise ContactError(f"That email address is not valid: {exc}", field="email") from None
    return email, email.rpartition("@")[2]


def _attributes_from_form(team, form, current):
    """Merge the custom-field inputs (attr.<key>) of a form into `current`.

    Keys that are not defined as fields (e.g. left over from an import) are
    kept as they are. Returns (attributes, errors keyed by form field name).
    """
    attributes = dict(current)
    errors = {}
    for field in fields_of(team):
        name = f"attr.{field.key}"
        if name not in form:
            continue
        try:
            value = parse_value(field.type, form.get(name))
        except ValueError as exc:
            errors[name] = str(exc)
            continue
        if value is None:
            attributes.pop(field.key, None)
        else:
            attributes[field.key] = value
    return attributes, errors


def create_contact(team, form, user=None):
    """Add one contact by hand.

    An address on the team's suppression list is refused rather than stored
    as "suppressed": the list also holds people who asked to be erased, and
    typing their address back in must not bring their data back. Removing it
    from the suppression list first is a deliberate, audited act.
    """
    errors = {}
    email = domain = None
    try:
        email, domain = normalise_email(form.get("email"))
    except ContactError as exc:
        errors.update(exc.errors)
    name = (form.get("name") or "").strip()
    if len(name) > 200:
        errors["name"] = "Keep the name under 200 characters."
    attributes, attribute_errors = _attributes_from_form(team, form, {})
    errors.update(attribute_errors)
    consent_source = (form.get("consent_source") or "").strip()
    consent_text = (form.get("consent_text") or "").strip()
    if consent_text and not consent_source:
        errors["consent_source"] = "Say where the person gave consent (for example “Paper form at the meetup”)."
    list_ids = {int(value) for value in form.getlist("lists") if str(value).isdigit()} if hasattr(form, "getlist") else set()
    lists = [lst for lst in lists_of(team) if lst.id in list_ids]
    if email and not errors.get("email"):
        if Contact.select().where((Contact.team == team) & (Contact.email == email)).exists():
            errors["email"] = f"{email} is already a contact of this team."
        elif suppression.is_suppressed(team.id, email):
            errors["email"] = (f"{email} is on the team's suppression list (it unsubscribed, bounced, complained "
                               "or was erased), so Loft will not add it. Remove it from the suppression list first "
                               "if the person asked to be added again.")
    if errors:
        raise ContactError(errors=errors)
    now = utcnow()
    try:
        with db.atomic():
            contact = Contact.create(team=team, email=email, domain=domain, name=name,
                                     attributes=attributes, source="manual",
                                     consent_source=consent_source, consent_text=consent_text,
                                     consent_at=now if consent_source else None, created_at=now, updated_at=now)
            events.record(team, contact, EventType.CREATED, {"source": "manual", "by": user.id if user else None})
            for lst in lists:
                _subscribe(team, contact, lst, source="manual")
    except IntegrityError:
        raise ContactError(f"{email} is already a contact of this team.", field="email")
    for lst in lists:  # after the commit: a run never starts for a contact that was not stored
        triggers.list_joined(team, [contact.id], lst.id, now, source="manual")
    triggers.contact_changed(team, contact.id, now)
    return contact


def update_contact(team, contact, form, user=None):
    """Save the edit form: address, name, status and custom fields, all or nothing."""
    errors = {}
    email, domain = contact.email, contact.domain
    try:
        email, domain = normalise_email(form.get("email"))
    except ContactError as exc:
        errors.update(exc.errors)
    name = (form.get("name") or "").strip()
    if len(name) > 200:
        errors["name"] = "Keep the name under 200 characters."
    status = form.get("status") or contact.status
    if status not in CONTACT_STATUSES:
        errors["status"] = "Choose one of the statuses in the list."
    attributes, attribute_errors = _attributes_from_form(team, form, attributes_of(contact))
    errors.update(attribute_errors)
    if "email" not in errors and email != contact.email:
        taken = Contact.select().where((Contact.team == team) & (Contact.email == email)
                                       & (Contact.id != contact.id)).exists()
        if taken:
            errors["email"] = f"{email} is already another contact of this team."
        elif suppression.is_suppressed(team.id, email):
            errors["email"] = f"{email} is on the team's suppression list, so Loft will not use it."
    if "status" not in errors and "email" not in errors:
        problem = _status_problem(team, email, contact.status, status)
        if problem:
            errors["status"] = problem
    if errors:
        raise ContactError(errors=errors)
    changed = [label for label, old, new in (("email", contact.email, email), ("name", contact.name, name),
                                             ("fields", attributes_of(contact), attributes)) if old != new]
    try:
        with db.atomic():
            if changed:
                # A new address drops the old one's check (contacts/validity.py): it said nothing about this one.
                unchecked = dict(validation_status="", validation_reasons="", validation_suggestion="",
                                 validation_checked_at=None) if email != contact.email else {}
                Contact.update(email=email, domain=domain, name=name, attributes=attributes, updated_at=utcnow(),
                               **unchecked).where(Contact.id == contact.id).execute()
                events.record(team, contact, EventType.UPDATED, {"fields": changed, "by": user.id if user else None})
            contact = Contact.get_by_id(contact.id)
            change_status(team, contact, status, user)
    except IntegrityError:
        raise ContactError(f"{email} is already another contact of this team.", field="email")
    triggers.contact_changed(team, contact.id)
    return Contact.get_by_id(contact.id)


def _status_problem(team, email, old, new):
    if new == "active" and old != "active" and suppression.is_suppressed(team.id, email):
        return ("This address is on the suppression list, so it cannot be made active. "
                "Remove it from the suppression list first if the person asked to be mailed again.")
    return None


def change_status(team, contact, status, user=None):
    """Set a contact's status, recording an event; True when it changed.

    "suppressed" also puts the address on the team's suppression list, so it
    stays blocked even if the contact is later deleted or erased.
    """
    if status not in CONTACT_STATUSES:
        raise ContactError("Choose one of the statuses in the list.", field="status")
    if status == contact.status:
        return False
    problem = _status_problem(team, contact.email, contact.status, status)
    if problem:
        raise ContactError(problem, field="status")
    with db.atomic():
        Contact.update(status=status, updated_at=utcnow()).where(Contact.id == contact.id).execute()
        events.record(team, contact, EventType.STATUS_CHANGED,
                      {"from": contact.status, "to": status, "by": user.id if user else None})
        if status == ContactStatus.SUPPRESSED:
            suppression.suppress(team.id, "email", contact.email, reason="manual")
        if status != ContactStatus.ACTIVE:  # unsubscribed, bounced, complained or suppressed: no more automation mail
            triggers.contacts_stopped([contact.id], status)
    contact.status = status
    return True


def delete_contact(team, contact, user=None):
    """Delete a contact with its subscriptions; its events stay for the counts, without it."""
    with db.atomic():
        triggers.contacts_deleting([contact.id])
        contact.delete_instance()
        audit(team, user, "contact.deleted", f"contact:{contact.id}")


def subscriptions_of(contact):
    return list(Subscription.select(Subscription, MailingList).join(MailingList)
                .where(Subscription.contact == contact).order_by(fn.lower(MailingList.name)))


def subscription_problem(team, contact, is_suppressed=None):
    """Why a contact may not be (re-)subscribed to any list, or None."""
    if contact.status in BLOCKED_STATUSES:
        return f"{contact.email} is {STATUS_LABELS[contact.status].lower()}, so it cannot be added to a list."
    suppressed = is_suppressed(contact.email) if is_suppressed else suppression.is_suppressed(team.id, contact.email)
    if suppressed:
        return f"{contact.email} is on the team's suppression list, so it cannot be added to a list."
    return None


def _subscribe(team, contact, mailing_list, source="manual"):
    problem = subscription_problem(team, contact)
    if problem:
        raise ContactError(problem, field="list_id")
    existing = Subscription.get_or_none((Subscription.contact == contact) & (Subscription.list == mailing_list))
    if existing is not None:
        if existing.status == ContactStatus.UNSUBSCRIBED:
            when = existing.unsubscribed_at.strftime("%Y-%m-%d") if existing.unsubscribed_at else "earlier"
            raise ContactError(f"{contact.email} unsubscribed from “{mailing_list.name}” ({when}); only they can "
                               "subscribe again, for example through a sign-up form.", field="list_id")
        raise ContactError(f"{contact.email} is already on “{mailing_list.name}”.", field="list_id")
    Subscription.create(contact=contact, list=mailing_list, status="subscribed")
    events.record(team, contact, EventType.SUBSCRIBED, {"list_id": mailing_list.id, "list": mailing_list.name,
                  "source": source})


def add_to_list(team, contact, mailing_list):
    """Subscribe a contact by hand; blocked, suppressed and unsubscribed people are refused."""
    with db.atomic():
        _subscribe(team, contact, mailing_list)
    triggers.list_joined(team, [contact.id], mailing_list.id, source="manual")
    triggers.contact_changed(team, contact.id)


def remove_from_list(team, contact, mailing_list):
    """Take a contact off a list (an editor's act, not the person's unsubscribe); True if it was on it."""
    with db.atomic():
        removed = (Subscription.delete().where((Subscription.contact == contact)
                                               & (Subscription.list == mailing_list)).execute())
        if removed:
            events.record(team, contact, EventType.REMOVED_FROM_LIST, {"list_id": mailing_list.id,
                          "list": mailing_list.name})
            triggers.left_list(team, contact.id, mailing_list.id)
    if removed:
        triggers.contact_changed(team, contact.id)
    return bool(removed)
