"""Contacts as CSV: the export of a filter, streamed batch by batch, with cells a spreadsheet
will not run as formulas (neutralise, also used by the import and report downloads)."""
import csv
import io
import re

from app.contacts.common import audit
from app.contacts.fields import fields_of
from app.contacts.lists import lists_of_contacts
from app.contacts.query import walk
from app.contacts.services import attributes_of
from app.contacts.tags import tags_of_contacts
from app.models import Subscription
from app.models import utcnow

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
    return audit(team, user, "contacts.export", "contacts", filter=resolved.filter.to_args())


def export_csv(team, resolved):
    """The CSV as an iterator of text chunks, one chunk per batch of contacts.

    Columns: the contact's own fields, its lists and tags (separated by "; ", which an import of
    the file splits again), then one column per custom
    field (by key). Filtered by a list, the subscription status and
    confirmation time of that list are added.
    """
    fields = fields_of(team)
    by_list = resolved.mailing_list
    header = ["email", "name", "status", "source", "created_at", "last_activity_at", "consent_source",
              "consent_at", "consent_ip", "consent_text", "lists", "tags"]
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
        tags = tags_of_contacts(ids)
        subscriptions = {}
        if by_list is not None:
            subscriptions = {s.contact_id: s for s in Subscription.select().where(
                (Subscription.list == by_list) & (Subscription.contact << ids))}
        for contact in contacts:
            attributes = attributes_of(contact)
            row = [contact.email, contact.name, contact.status, contact.source, _iso(contact.created_at),
                   _iso(contact.last_activity_at), contact.consent_source, _iso(contact.consent_at),
                   contact.consent_ip, contact.consent_text, "; ".join(lists.get(contact.id, [])),
                   "; ".join(tag.name for tag in tags.get(contact.id, []))]
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
