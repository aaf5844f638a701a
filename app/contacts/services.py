"""Contacts, custom fields, lists and subscriptions: the audience.

Every function takes the team first and scopes every query by it, so an id
from another team is simply not found. Bad input raises ContactError with a
message for the person and, where it belongs to one form field, that field.

Speed at a million contacts rests on two rules. Pages never count and never
use OFFSET: they walk by id (the keyset) on an index that already has the rows
in id order, so the first page and the ten-thousandth cost the same. And a
search that no index can answer (a name or a part of an address) only looks
at a bounded window of contacts per page, saying so on the page, instead of
scanning the whole table for a rare match.
"""
import csv
import dataclasses
import datetime
import io
import json
import math
import re
import unicodedata

from email_validator import EmailNotValidError
from email_validator import validate_email
from peewee import IntegrityError
from peewee import SQL
from peewee import fn

from app import events
from app.consent import suppression
from app.db import db
from app.models import BLOCKED_STATUSES
from app.models import CONTACT_STATUSES
from app.models import FIELD_TYPES
from app.models import LIST_VISIBILITIES
from app.models import SUBSCRIPTION_STATUSES
from app.models import AuditLog
from app.models import Contact
from app.models import CustomField
from app.models import Event
from app.models import EventType
from app.models import MailingList
from app.models import Segment
from app.models import Subscription
from app.models import Suppression
from app.models import utcnow
from app.segments.compiler import compile_rules

PAGE_SIZE = 50
# How many contacts a "contains" search looks at per page. No index can find
# "smith" in the middle of a name, so the page scans at most this many rows
# (newest first) and offers to continue below them.
SEARCH_WINDOW = 50_000
TIMELINE_PAGE = 25
BATCH_SIZE = 500  # rows per transaction in bulk actions and exports
MAX_SELECTED = 1000  # ticked ids in one bulk action; larger selections go by filter

STATUS_LABELS = {"active": "Active", "unsubscribed": "Unsubscribed", "bounced": "Bounced",
                 "complained": "Complained", "suppressed": "Suppressed"}
FIELD_TYPE_LABELS = {"text": "Text", "number": "Number", "date": "Date", "boolean": "Yes / no"}
EVENT_LABELS = {
    "created": "Added", "imported": "Imported", "updated": "Details changed", "status_changed": "Status changed",
    "subscribed": "Added to list", "confirmed": "Confirmed subscription", "unsubscribed": "Unsubscribed",
    "removed_from_list": "Removed from list", "queued": "Queued", "sent": "Sent", "delivered": "Delivered",
    "deferred": "Delivery deferred", "bounced": "Bounced", "opened": "Opened", "clicked": "Clicked",
    "complained": "Marked as spam",
}
BULK_ACTIONS = {"add_to_list": "Add to list", "remove_from_list": "Remove from list",
                "change_status": "Change status", "delete": "Delete"}

# Keys a custom field may not take: templates address contact.<key>, and
# these already mean something there.
RESERVED_KEYS = {"id", "email", "name", "status", "domain", "source", "attributes", "lists", "team",
                 "created_at", "updated_at", "last_activity_at", "consent_source", "consent_at", "consent_ip",
                 "consent_text", "unsubscribe_url"}
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def key_from_label(text):
    """A custom-field key made from a label or column title ('Favourite colour' -> 'favourite_colour',
    'Café' -> 'cafe', '2nd phone' -> 'f_2nd_phone'), or '' when nothing usable is left.

    static/app.js fills the New field form's key with the same rule as the label is typed.
    """
    plain = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    key = re.sub(r"[^a-z0-9]+", "_", plain).strip("_")[:40].rstrip("_")
    if key and not key[0].isalpha():
        key = ("f_" + key)[:40].rstrip("_")
    return key if KEY_PATTERN.match(key or "-") else ""
MAX_TEXT = 2000


class ContactError(ValueError):
    """A refusal with a message for the person; `errors` maps form fields to messages."""

    def __init__(self, message=None, field=None, errors=None):
        self.errors = dict(errors or {})
        if field and message:
            self.errors.setdefault(field, message)
        if message is None:
            message = " ".join(self.errors.values())
        super().__init__(message)
        self.field = field or (next(iter(self.errors)) if self.errors else None)


class NotFound(LookupError):
    """A list or segment named in a filter is not one of the team's."""


# --- Lookups ------------------------------------------------------------------

def get_contact(team, contact_id):
    return Contact.get_or_none((Contact.id == contact_id) & (Contact.team == team))


def get_list(team, list_id):
    return MailingList.get_or_none((MailingList.id == list_id) & (MailingList.team == team))


def get_field(team, field_id):
    return CustomField.get_or_none((CustomField.id == field_id) & (CustomField.team == team))


def lists_of(team):
    return list(MailingList.select().where(MailingList.team == team).order_by(fn.lower(MailingList.name)))


def fields_of(team):
    return list(CustomField.select().where(CustomField.team == team).order_by(CustomField.id))


def segments_of(team):
    return list(Segment.select(Segment.id, Segment.name).where(Segment.team == team)
                .order_by(fn.lower(Segment.name)))


def attributes_of(contact):
    try:
        value = json.loads(contact.attributes or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def event_data(event):
    try:
        value = json.loads(event.data or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# --- Addresses and typed attributes -------------------------------------------

def normalise_email(address):
    """(email, domain): syntax-checked without DNS, lower-cased; or ContactError."""
    address = (address or "").strip()
    if not address:
        raise ContactError("Enter an email address.", field="email")
    try:
        email = validate_email(address, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ContactError(f"That email address is not valid: {exc}", field="email")
    return email, email.rpartition("@")[2]


def parse_value(field_type, raw):
    """A form value as the JSON value stored for a field of `field_type`.

    None means "no value" (the key is removed). Dates are stored as ISO
    strings (YYYY-MM-DD), which compare correctly as text in SQL.
    """
    raw = (raw or "").strip()
    if raw == "":
        return None
    if field_type == "number":
        try:
            number = int(raw) if re.fullmatch(r"[+-]?\d+", raw) else float(raw.replace(",", "."))
        except ValueError:
            raise ValueError("Enter a number, for example 42 or 3.5.")
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError("Enter a number, for example 42 or 3.5.")
        return number
    if field_type == "date":
        try:
            return datetime.date.fromisoformat(raw).isoformat()
        except ValueError:
            raise ValueError("Enter a date as YYYY-MM-DD, for example 2026-03-31.")
    if field_type == "boolean":
        lowered = raw.lower()
        if lowered in ("yes", "true", "1", "on"):
            return True
        if lowered in ("no", "false", "0", "off"):
            return False
        raise ValueError("Choose yes or no.")
    if len(raw) > MAX_TEXT:
        raise ValueError(f"Keep it under {MAX_TEXT} characters.")
    return raw


def form_value(field, attributes):
    """The stored value of a field as a form shows it."""
    value = attributes.get(field.key)
    if value is None:
        return ""
    if field.type == "boolean":
        return "yes" if value else "no"
    return str(value)


def display_value(field_type, value):
    if value is None or value == "":
        return ""
    if field_type == "boolean":
        return "Yes" if value else "No"
    return str(value)


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


# --- Contacts -----------------------------------------------------------------

def _audit(team, user, what, target="", **data):
    return AuditLog.create(team=team, user=getattr(user, "id", None), action=what, target=target,
                           data=json.dumps(data))


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
                                     attributes=json.dumps(attributes), source="manual",
                                     consent_source=consent_source, consent_text=consent_text,
                                     consent_at=now if consent_source else None, created_at=now, updated_at=now)
            events.record(team, contact, EventType.CREATED, {"source": "manual", "by": user.id if user else None})
            for lst in lists:
                _subscribe(team, contact, lst, source="manual")
    except IntegrityError:
        raise ContactError(f"{email} is already a contact of this team.", field="email")
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
                Contact.update(email=email, domain=domain, name=name, attributes=json.dumps(attributes),
                               updated_at=utcnow()).where(Contact.id == contact.id).execute()
                events.record(team, contact, EventType.UPDATED, {"fields": changed, "by": user.id if user else None})
            contact = Contact.get_by_id(contact.id)
            change_status(team, contact, status, user)
    except IntegrityError:
        raise ContactError(f"{email} is already another contact of this team.", field="email")
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
        if status == "suppressed":
            suppression.suppress(team.id, "email", contact.email, reason="manual")
    contact.status = status
    return True


def delete_contact(team, contact, user=None):
    """Delete a contact with its subscriptions; its events stay for the counts, without it."""
    with db.atomic():
        contact.delete_instance()
        _audit(team, user, "contact.deleted", f"contact:{contact.id}")


def subscriptions_of(contact):
    return list(Subscription.select(Subscription, MailingList).join(MailingList)
                .where(Subscription.contact == contact).order_by(fn.lower(MailingList.name)))


def timeline(contact, before=None, limit=TIMELINE_PAGE):
    """Events about the contact, newest first: (events, cursor of the next page or None).

    The cursor is an event id; the page continues below that event's
    (at, id), which the (contact, at) index serves in order.
    """
    query = Event.select().where(Event.contact == contact)
    if before:
        anchor = Event.get_or_none((Event.id == before) & (Event.contact == contact))
        if anchor is None:
            return [], None
        query = query.where((Event.at < anchor.at) | ((Event.at == anchor.at) & (Event.id < anchor.id)))
    events = list(query.order_by(Event.at.desc(), Event.id.desc()).limit(limit + 1))
    more = len(events) > limit
    events = events[:limit]
    _name_campaigns(contact.team_id, events)
    return events, (events[-1].id if more else None)


def _name_campaigns(team_id, events):
    """Give each event its campaign's name (one query for the page), for describe_event."""
    from app.models import Campaign  # campaigns build on contacts: imported here, not at the top
    ids = {e.campaign_id for e in events if e.campaign_id is not None}
    names = dict(Campaign.select(Campaign.id, Campaign.name)
                 .where((Campaign.id << ids) & (Campaign.team == team_id)).tuples()) if ids else {}
    for event in events:
        event.campaign_name = names.get(event.campaign_id)


# --- Lists and subscriptions --------------------------------------------------

def _list_form(team, form, current=None):
    name = (form.get("name") or "").strip()
    description = (form.get("description") or "").strip()
    if not name:
        raise ContactError("Give the list a name.", field="name")
    if len(name) > 100:
        raise ContactError("Keep the name under 100 characters.", field="name")
    if len(description) > 1000:
        raise ContactError("Keep the description under 1000 characters.", field="description")
    clash = MailingList.select().where((MailingList.team == team) & (fn.lower(MailingList.name) == name.lower()))
    if current is not None:
        clash = clash.where(MailingList.id != current.id)
    if clash.exists():
        raise ContactError(f"There is already a list called “{name}”.", field="name")
    # Not chosen: a new list is private, an existing one keeps what it was.
    visibility = form.get("visibility") or (current.visibility if current is not None else "private")
    if visibility not in LIST_VISIBILITIES:
        raise ContactError("Choose whether the list is public or private.", field="visibility")
    return dict(name=name, description=description, double_opt_in=bool(form.get("double_opt_in")),
                visibility=visibility)


def create_list(team, form):
    return MailingList.create(team=team, **_list_form(team, form))


def update_list(team, mailing_list, form):
    values = _list_form(team, form, mailing_list)
    MailingList.update(**values).where(MailingList.id == mailing_list.id).execute()
    return MailingList.get_by_id(mailing_list.id)


def delete_list(team, mailing_list, user=None):
    """Delete the list and its subscriptions; the contacts stay."""
    with db.atomic():
        mailing_list.delete_instance()
        _audit(team, user, "list.deleted", f"list:{mailing_list.id}", name=mailing_list.name)


def list_counts(list_ids):
    """{list_id: {status: count}} from the (list, status, contact) index."""
    counts = {list_id: dict.fromkeys(SUBSCRIPTION_STATUSES, 0) for list_id in list_ids}
    if not counts:
        return counts
    rows = (Subscription.select(Subscription.list, Subscription.status, fn.COUNT(SQL("*")))
            .where(Subscription.list << list(counts)).group_by(Subscription.list, Subscription.status).tuples())
    for list_id, status, count in rows:
        counts[list_id][status] = count
    return counts


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
        if existing.status == "unsubscribed":
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


def remove_from_list(team, contact, mailing_list):
    """Take a contact off a list (an editor's act, not the person's unsubscribe); True if it was on it."""
    with db.atomic():
        removed = (Subscription.delete().where((Subscription.contact == contact)
                                               & (Subscription.list == mailing_list)).execute())
        if removed:
            events.record(team, contact, EventType.REMOVED_FROM_LIST, {"list_id": mailing_list.id,
                          "list": mailing_list.name})
    return bool(removed)


# --- Custom fields ------------------------------------------------------------

def create_field(team, form):
    """A new custom field. Without a key, the key is made from the label (key_from_label)."""
    label = (form.get("label") or "").strip()
    key = (form.get("key") or "").strip() or key_from_label(label)
    field_type = form.get("type") or "text"
    errors = {}
    if not key and label:
        errors["key"] = ("The label has no letters or digits to make a key from: enter one, "
                         "for example colour or plan_2026.")
    elif not key:
        errors["key"] = "Enter a key, or a label to make it from."
    elif not KEY_PATTERN.match(key):
        errors["key"] = ("Use lower-case letters, digits and underscores, starting with a letter "
                         "(at most 40 characters), for example company or plan_2026.")
    elif key in RESERVED_KEYS:
        errors["key"] = f"“{key}” is already a built-in contact field; choose another key."
    elif CustomField.select().where((CustomField.team == team) & (CustomField.key == key)).exists():
        errors["key"] = f"There is already a field with the key “{key}”."
    if not label:
        errors["label"] = "Give the field a label."
    elif len(label) > 100:
        errors["label"] = "Keep the label under 100 characters."
    if field_type not in FIELD_TYPES:
        errors["type"] = "Choose one of the types in the list."
    if errors:
        raise ContactError(errors=errors)
    try:
        return CustomField.create(team=team, key=key, label=label, type=field_type)
    except IntegrityError:
        raise ContactError(f"There is already a field with the key “{key}”.", field="key")


def update_field(team, field, form):
    """Rename a field. Its key and type stay: stored values and templates depend on them."""
    label = (form.get("label") or "").strip()
    if not label:
        raise ContactError("Give the field a label.", field="label")
    if len(label) > 100:
        raise ContactError("Keep the label under 100 characters.", field="label")
    CustomField.update(label=label).where(CustomField.id == field.id).execute()
    return CustomField.get_by_id(field.id)


def _has_key(key):
    # Keys are validated slugs, so interpolating them into the JSON path is safe.
    return fn.json_extract(Contact.attributes, f"$.{key}").is_null(False)


def field_usage(team, field):
    """How many contacts have a value for this field (a full scan: only on the delete page)."""
    return Contact.select().where((Contact.team == team) & _has_key(field.key)).count()


def delete_field(team, field, user=None):
    """Delete the field and remove its values from every contact, in one transaction; returns how many."""
    with db.atomic():
        cleared = (Contact.update(attributes=fn.json_remove(Contact.attributes, f"$.{field.key}"))
                   .where((Contact.team == team) & _has_key(field.key)).execute())
        field.delete_instance()
        _audit(team, user, "field.deleted", f"field:{field.key}", cleared=cleared)
    return cleared


# --- Filters, search and keyset pages -----------------------------------------

def _int(value):
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


@dataclasses.dataclass
class ContactFilter:
    """What the contact list shows: search text, list, subscription status, contact status, segment."""
    q: str = ""
    list_id: int = None
    list_status: str = ""
    status: str = ""
    segment_id: int = None

    @classmethod
    def from_args(cls, args):
        list_status = args.get("list_status", "")
        status = args.get("status", "")
        return cls(q=(args.get("q") or "").strip()[:200], list_id=_int(args.get("list")),
                   list_status=list_status if list_status in SUBSCRIPTION_STATUSES else "",
                   status=status if status in CONTACT_STATUSES else "", segment_id=_int(args.get("segment")))

    def to_args(self):
        """URL arguments that rebuild this filter (empty ones left out)."""
        args = {"q": self.q, "list": self.list_id, "list_status": self.list_status, "status": self.status,
                "segment": self.segment_id}
        return {key: value for key, value in args.items() if value}

    @property
    def is_empty(self):
        return not self.to_args()

    @property
    def email_search(self):
        """Text with an @ searches addresses by prefix, or "@domain" by domain (both indexed);
        other text is a bounded "contains" on address and name."""
        return "@" in self.q


@dataclasses.dataclass
class Resolved:
    filter: ContactFilter
    mailing_list: MailingList = None
    segment: Segment = None
    segment_condition: object = None


def resolve_filter(team, contact_filter):
    """Check the filter's list and segment belong to the team (else NotFound) and compile the segment."""
    resolved = Resolved(contact_filter)
    if contact_filter.list_id:
        resolved.mailing_list = get_list(team, contact_filter.list_id)
        if resolved.mailing_list is None:
            raise NotFound("list")
    if contact_filter.segment_id:
        resolved.segment = Segment.get_or_none((Segment.id == contact_filter.segment_id) & (Segment.team == team))
        if resolved.segment is None:
            raise NotFound("segment")
        resolved.segment_condition = _segment_condition(team, resolved.segment)
    return resolved


def _segment_condition(team, segment):
    """The segment's rules as a condition on Contact, from the segments area."""
    try:
        rules = json.loads(segment.rules or "{}")
    except ValueError:
        rules = {}
    try:
        return compile_rules(team.id, rules)
    except ValueError as exc:
        raise ContactError(f"The segment “{segment.name}” cannot be used: {exc}", field="segment")


def _filtered(team, resolved, columns=None):
    """(query, key): every contact the filter matches (no search window), and the id column to walk by.

    With a list, the query is driven by the list's subscriptions through
    their (list, contact) or (list, status, contact) index, so the key is
    subscription.contact_id: rows come in id order without a sort.
    """
    contact_filter = resolved.filter
    query = Contact.select(*(columns or (Contact,)))
    key = Contact.id
    if resolved.mailing_list is not None:
        on = (Subscription.contact == Contact.id) & (Subscription.list == resolved.mailing_list.id)
        if contact_filter.list_status:
            on &= Subscription.status == contact_filter.list_status
        query = query.join(Subscription, on=on)
        key = Subscription.contact
    query = query.where(Contact.team == team)
    if contact_filter.status:
        query = query.where(Contact.status == contact_filter.status)
    if resolved.segment_condition is not None:
        query = query.where(resolved.segment_condition)
    if contact_filter.q:
        query = query.where(_search_condition(contact_filter))
    return query, key


def _search_condition(contact_filter):
    q = contact_filter.q.lower()
    if q.startswith("@"):
        # "@example.com": everyone at that domain, from the (team, domain) index, already in id order.
        return Contact.domain == q[1:]
    if contact_filter.email_search:
        # A range on the (team, email) unique index: the prefix match that stays fast at any size.
        return (Contact.email >= q) & (Contact.email < q + "\uffff")
    return Contact.email.contains(q) | Contact.name.contains(contact_filter.q)


@dataclasses.dataclass
class Page:
    contacts: list
    older: int = None  # ?before= for the next (older) page
    newer: int = None  # ?after= for the previous (newer) page
    searched_to: int = None  # a bounded search stopped above this id without filling the page


def _window_edge(team, start, descending):
    """The id SEARCH_WINDOW contacts away from `start` in the walking direction, or None when no
    contact lies beyond it (the window then simply runs to the end)."""
    query = Contact.select(Contact.id).where(Contact.team == team)
    if descending:
        if start:
            query = query.where(Contact.id < start)
        query = query.order_by(Contact.id.desc())
    else:
        query = query.where(Contact.id > start).order_by(Contact.id)
    ids = [row[0] for row in query.offset(SEARCH_WINDOW - 1).limit(2).tuples()]
    return ids[0] if len(ids) == 2 else None


def contact_page(team, resolved, before=None, after=None, size=PAGE_SIZE):
    """One page of contacts, newest first, walking by id (never OFFSET)."""
    contact_filter = resolved.filter
    query, key = _filtered(team, resolved)
    descending = not after
    bounded = bool(contact_filter.q) and not contact_filter.email_search
    edge = _window_edge(team, before if descending else after, descending) if bounded else None
    if descending:
        if before:
            query = query.where(key < before)
        if edge:
            query = query.where(key >= edge)
        query = query.order_by(key.desc())
    else:
        query = query.where(key > after)
        if edge:
            query = query.where(key <= edge)
        query = query.order_by(key.asc())
    if contact_filter.email_search and not contact_filter.q.startswith("@"):
        # Let the (team, email) range find the few matching ids, then take the newest of them;
        # scanning every contact newest-first and testing each address would be slower.
        query = Contact.select().where(Contact.id << query.select(Contact.id).limit(size + 1)) \
            .order_by(Contact.id.desc() if descending else Contact.id.asc())
    rows = list(query.limit(size + 1))
    full = len(rows) > size
    rows = rows[:size]
    if not descending:
        rows.reverse()
    page = Page(rows)
    if descending:
        if full:
            page.older = rows[-1].id
        elif edge:
            page.older, page.searched_to = edge, edge
        page.newer = rows[0].id if (before and rows) else (before if before else None)
    else:
        if full:
            page.newer = rows[0].id
        elif edge:
            page.newer, page.searched_to = edge, edge
        page.older = rows[-1].id if rows else after
    return page


def lists_of_contacts(contact_ids):
    """{contact_id: [list name, ...]} for a page of contacts: one query."""
    result = {}
    if not contact_ids:
        return result
    rows = (Subscription.select(Subscription.contact, MailingList.name).join(MailingList)
            .where((Subscription.contact << list(contact_ids)) & (Subscription.status != "unsubscribed"))
            .order_by(fn.lower(MailingList.name)).tuples())
    for contact_id, name in rows:
        result.setdefault(contact_id, []).append(name)
    return result


def team_has_contacts(team):
    return Contact.select(Contact.id).where(Contact.team == team).limit(1).exists()


def walk(team, resolved=None, ids=None, batch=None, columns=None):
    """Batches of contacts, ascending by id: the selected ids, or everything the filter matches.

    Each batch is one indexed query continuing above the last id, so the walk
    is safe while the rows change (deleted or re-filtered rows are not revisited).
    """
    batch = batch or BATCH_SIZE
    cursor = 0
    while True:
        if ids is not None:
            query = Contact.select(*(columns or (Contact,))).where(Contact.team == team)
            query = query.where(Contact.id << sorted(ids)) if ids else query.where(SQL("0"))
            key = Contact.id
        else:
            query, key = _filtered(team, resolved, columns)
        rows = list(query.where(key > cursor).order_by(key.asc()).limit(batch))
        if not rows:
            return
        yield rows
        cursor = rows[-1].id
        if len(rows) < batch:
            return


# --- Bulk actions -------------------------------------------------------------

def start_bulk(team, user, form):
    """Validate a bulk action and record it (AuditLog, state "queued"); the caller enqueues it."""
    data = validate_bulk(team, form)
    return _audit(team, user, "contacts.bulk", data["action"], **data)


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
            raise ContactError("The filter names a list or segment that no longer exists.", field="scope")
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
        mailing_list = get_list(team, _int(form.get("list_id")))
        if mailing_list is None:
            raise ContactError("Choose a list.", field="list_id")
        data["list_id"] = mailing_list.id
        data["list"] = mailing_list.name
    if action == "change_status":
        # "new_status", not "status": the form also carries the filter, whose "status" is the one to match.
        if form.get("new_status") not in CONTACT_STATUSES:
            raise ContactError("Choose the new status.", field="new_status")
        data["status"] = form.get("new_status")
    return data


def bulk_job(team, job_id):
    return AuditLog.get_or_none((AuditLog.id == job_id) & (AuditLog.team == team)
                                & (AuditLog.action == "contacts.bulk"))


def bulk_count(team, form):
    """How many contacts a bulk action would touch (for the confirmation page)."""
    if (form.get("scope") or "selected") == "filter":
        contact_filter = ContactFilter.from_args(form)
        query, _ = _filtered(team, resolve_filter(team, contact_filter), (Contact.id,))
        return query.count()
    ids = {int(value) for value in form.getlist("ids") if str(value).isdigit()}
    return Contact.select().where((Contact.team == team) & (Contact.id << list(ids))).count() if ids else 0


def _save_job(job, data):
    AuditLog.update(data=json.dumps(data)).where(AuditLog.id == job.id).execute()


def run_bulk(job_id):
    """Carry out a recorded bulk action, batch by batch, one transaction per batch.

    Progress (processed, changed, skipped) is written after every batch, so
    the page can show it and a crash leaves an honest record of what was done.
    """
    job = AuditLog.get_or_none(AuditLog.id == job_id)
    if job is None or job.action != "contacts.bulk":
        return
    data = json.loads(job.data)
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
        return len(on_list)
    return apply


def _bulk_status(team, job, data):
    status = data["status"]
    blocked = suppression.Checker(team.id) if status == "active" else None
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
        if status == "suppressed":
            hashes = [{"team": team.id, "kind": "email", "value_hash": suppression.value_hash(team.id, "email", c.email),
                       "hint": suppression.hint("email", c.email), "reason": "manual"} for c in changing]
            for start in range(0, len(hashes), 100):
                Suppression.insert_many(hashes[start:start + 100]).on_conflict_ignore().execute()
        return len(changing)
    return apply


def _bulk_delete(team, job, data):
    def apply(contacts):
        ids = [contact.id for contact in contacts]
        return Contact.delete().where((Contact.team == team) & (Contact.id << ids)).execute()
    return apply


_BULK = {"add_to_list": _bulk_add, "remove_from_list": _bulk_remove, "change_status": _bulk_status,
         "delete": _bulk_delete}


# --- Export -------------------------------------------------------------------

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value):
    """A CSV cell a spreadsheet will not run as a formula (OWASP: prefix a single quote)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        value = "yes" if value else "no"
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _iso(value):
    return value.isoformat(sep=" ", timespec="seconds") if value else ""


def record_export(team, user, resolved):
    return _audit(team, user, "contacts.export", "contacts", filter=resolved.filter.to_args())


def export_csv(team, resolved):
    """The CSV as an iterator of text chunks, one chunk per batch of contacts.

    Columns: the contact's own fields, its lists, then one column per custom
    field (by key). Filtered by a list, the subscription status and
    confirmation time of that list are added.
    """
    fields = fields_of(team)
    by_list = resolved.mailing_list
    header = ["email", "name", "status", "source", "created_at", "last_activity_at", "consent_source",
              "consent_at", "consent_ip", "consent_text", "lists"]
    if by_list is not None:
        header += ["list_status", "list_confirmed_at"]
    header += [field.key for field in fields]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([neutralise(cell) for cell in header])
    yield buffer.getvalue()
    for contacts in walk(team, resolved):
        buffer.seek(0)
        buffer.truncate()
        ids = [contact.id for contact in contacts]
        lists = lists_of_contacts(ids)
        subscriptions = {}
        if by_list is not None:
            subscriptions = {s.contact_id: s for s in Subscription.select().where(
                (Subscription.list == by_list) & (Subscription.contact << ids))}
        for contact in contacts:
            attributes = attributes_of(contact)
            row = [contact.email, contact.name, contact.status, contact.source, _iso(contact.created_at),
                   _iso(contact.last_activity_at), contact.consent_source, _iso(contact.consent_at),
                   contact.consent_ip, contact.consent_text, "; ".join(lists.get(contact.id, []))]
            if by_list is not None:
                subscription = subscriptions.get(contact.id)
                row += [subscription.status if subscription else "",
                        _iso(subscription.confirmed_at) if subscription else ""]
            row += [attributes.get(field.key) for field in fields]
            writer.writerow([neutralise(cell) for cell in row])
        yield buffer.getvalue()


def export_filename(team, resolved):
    stem = "contacts"
    if resolved.mailing_list is not None:
        stem = "list-" + (re.sub(r"[^a-z0-9]+", "-", resolved.mailing_list.name.lower()).strip("-") or "list")
    elif resolved.segment is not None:
        stem = "segment-" + (re.sub(r"[^a-z0-9]+", "-", resolved.segment.name.lower()).strip("-") or "segment")
    return f"{stem}-{utcnow().strftime('%Y%m%d-%H%M')}.csv"



def describe_event(event):
    """A short line about an event for the timeline (no personal data beyond what it already holds)."""
    data = event_data(event)
    if event.type in ("subscribed", "removed_from_list", "confirmed", "unsubscribed") and data.get("list"):
        text = f"“{data['list']}”"
        if data.get("source") and data["source"] != "manual":
            text += f" ({data['source']})"
        return text
    if event.type == "status_changed":
        old, new = data.get("from", ""), data.get("to", "")
        return f"{STATUS_LABELS.get(old, old)} → {STATUS_LABELS.get(new, new)}"
    if event.type == "updated" and data.get("fields"):
        return "Changed: " + ", ".join(data["fields"])
    if event.type in ("created", "imported") and data.get("source"):
        return f"Source: {data['source']}"
    parts = []
    if event.campaign_id is not None:
        name = getattr(event, "campaign_name", None)
        parts.append(f"“{name}”" if name else f"Campaign #{event.campaign_id}")
    parts += _activity_details(event.type, data)
    return " · ".join(parts)


# Where a bounce, complaint or delivery was learnt, in words.
FEEDBACK_SOURCES = {"smtp": "reply while sending", "imap": "bounce mailbox", "ses": "Amazon SES",
                    "sendgrid": "SendGrid", "postmark": "Postmark", "mailgun": "Mailgun", "generic": "webhook",
                    "mailto": "unsubscribe email"}
BOUNCE_KINDS = {"hard": "hard bounce", "soft": "soft bounce", "block": "blocked by policy (not the address)",
                "auth": "our authentication failed", "limit": "account limit reached", "delayed": "delayed"}


def _activity_details(type, data):
    """The few facts of a campaign event a person cares about: why it bounced, which link, a machine?"""
    source = FEEDBACK_SOURCES.get(data.get("source"), data.get("source"))
    if type in ("bounced", "deferred"):
        kind = BOUNCE_KINDS.get(data.get("kind"), data.get("kind") or "")
        words = " ".join(w for w in (data.get("status", ""), data.get("reason", "")) if w)
        return [p for p in (kind, words, f"via {source}" if source else "") if p]
    if type == "complained":
        return [p for p in (data.get("feedback_type") or "abuse", f"via {source}" if source else "") if p]
    if type == "delivered":
        return [f"confirmed by {source}"] if source else []
    if type == "opened":
        return ["machine open (privacy proxy), not counted"] if data.get("machine") else []
    if type == "clicked":
        link = str(data.get("url") or "")[:120]
        return [p for p in (link, "scanner, not counted" if data.get("bot") else "") if p]
    return []
