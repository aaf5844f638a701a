"""GDPR: everything Loft holds about one contact, as JSON; and erasure.

Erasure deletes the person and keeps only what is needed to honour it: a
keyed hash of the address on the suppression list (reason "erased"), so the
address is refused by imports, forms and the contact form forever after,
and the impersonal skeleton of their events (type, time, campaign) so a
campaign's counts do not change. Transactional messages to the address are
anonymised the same way (app/transactional/erasure.py). Both acts are written to AuditLog with the
address's hint, never the address.
"""
import json


from app.addresses import InvalidEmail
from app.addresses import normalise_email
from app.automations import triggers
from app.consent import suppression
from app.consent.services import ConsentError
from app.consent.services import audit
from app.contacts.tags import tags_of
from app.db import db
from app.models import AuditLog
from app.models import Campaign
from app.models import Contact
from app.models import ContactTag
from app.models import CustomField
from app.models import Event
from app.models import MailingList
from app.models import Send
from app.models import Subscription
from app.models import utcnow
from app.sending import ledger
from app.transactional import erasure as tx_erasure


def get_contact(team, contact_id):
    return Contact.get_or_none((Contact.id == contact_id) & (Contact.team == team))


def _when(value):
    return value.isoformat() + "Z" if value else None


def export_data(team, contact):
    """A dict of everything stored about the contact (the caller records the export)."""
    fields = {f.key: f for f in CustomField.select().where(CustomField.team == team)}
    attributes = contact.attributes if isinstance(contact.attributes, dict) else {}
    subscriptions = (Subscription.select(Subscription, MailingList).join(MailingList)
                     .where(Subscription.contact == contact).order_by(Subscription.id))
    events = Event.select().where(Event.contact == contact).order_by(Event.at, Event.id)
    sends = (Send.select(Send, Campaign.name).join(Campaign)
             .where(Send.contact == contact).order_by(Send.id))
    blocked = suppression.entries_for(team.id, contact.email)
    return {
        "format": "loft.contact-export.v1",
        "exported_at": _when(utcnow()),
        "controller": {"team": team.name, "postal_address": team.postal_address},
        "contact": {
            "id": contact.id, "email": contact.email, "name": contact.name, "status": contact.status,
            "source": contact.source, "created_at": _when(contact.created_at),
            "updated_at": _when(contact.updated_at), "last_activity_at": _when(contact.last_activity_at),
        },
        # The last address check (contacts/validity.py): its suggestion is a form of the address.
        "address_check": {"status": contact.validation_status,
                          "reasons": [code for code in contact.validation_reasons.split(",") if code],
                          "suggestion": contact.validation_suggestion,
                          "checked_at": _when(contact.validation_checked_at)},
        "attributes": [{"key": key, "label": fields[key].label if key in fields else key, "value": value}
                       for key, value in sorted(attributes.items())],
        "consent": {"source": contact.consent_source, "at": _when(contact.consent_at),
                    "ip": contact.consent_ip, "text": contact.consent_text},
        "subscriptions": [{"list": s.list.name, "status": s.status, "created_at": _when(s.created_at),
                           "confirmed_at": _when(s.confirmed_at), "unsubscribed_at": _when(s.unsubscribed_at)}
                          for s in subscriptions],
        "tags": [tag.name for tag in tags_of(contact)],
        "events": [{"type": e.type, "at": _when(e.at), "campaign_id": e.campaign_id, "data": e.data}
                   for e in events],
        "messages": [{"campaign": s.campaign.name, "status": s.status, "sent_at": _when(s.sent_at),
                      "message_id": s.message_id} for s in sends],
        "transactional_messages": [{"subject": tx.subject, "from": tx.from_email, "status": tx.status,
                                    "accepted_at": _when(tx.created_at), "sent_at": _when(tx.sent_at),
                                    "message_id": tx.message_id, "opens": tx.opens, "clicks": tx.clicks}
                                   for tx in tx_erasure.messages_to(team.id, contact.email)],
        "suppression": {
            "suppressed": bool(blocked),
            "entries": [{"kind": e.kind, "reason": e.reason, "since": _when(e.created_at)} for e in blocked],
        },
    }


def export_json(team, user, contact):
    """The export as pretty JSON text, with an AuditLog row saying who took it."""
    data = export_data(team, contact)
    audit(team, user, "contact.exported", f"contact:{contact.id}", hint=suppression.hint("email", contact.email))
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False)


def export_filename(contact):
    return f"loft-contact-{contact.id}.json"


def erase(team, user, contact, typed):
    """Erase a contact for good, given its address typed again as confirmation.

    One transaction: the address goes on the suppression list (reason
    "erased"), subscriptions and tags are deleted, events lose their contact and their
    data (type, time and campaign stay for the counts), the send ledger keeps
    only the hint, transactional messages to the address keep only the hint
    (no body, subject or Reply-To), audit rows that quoted the address get the hint instead,
    and the contact row goes. Returns the hint for messages.
    """
    if suppression.normalise("email", typed or "") != contact.email:
        raise ConsentError("Type the contact's email address exactly to confirm the erasure.", field="confirm")
    hint = suppression.hint("email", contact.email)
    with db.atomic():
        suppression.suppress(team.id, "email", contact.email, reason="erased")
        lists = Subscription.delete().where(Subscription.contact == contact).execute()
        tags = ContactTag.delete().where(ContactTag.contact == contact).execute()
        events = Event.update(contact=None, data={}).where(Event.contact == contact).execute()
        ledger.skip_erased(contact.id, hint)
        triggers.erase_contact(contact.id)
        tx_messages = tx_erasure.erase_address(team.id, contact.email, hint)
        mentions = AuditLog.select(AuditLog.id, AuditLog.data).where(
            (AuditLog.team == team) & AuditLog.data.cast("TEXT").contains(contact.email))
        for row in mentions:
            AuditLog.update(data=_replaced(row.data, contact.email, hint)).where(AuditLog.id == row.id).execute()
        Contact.delete().where((Contact.id == contact.id) & (Contact.team == team)).execute()
        audit(team, user, "contact.erased", f"contact:{contact.id}", hint=hint, subscriptions_deleted=lists,
              tags_removed=tags, events_scrubbed=events, tx_messages_anonymised=tx_messages)
    return hint


def erase_address(team, user, typed):
    """Erase an address that is not a contact: a transactional message's recipient (a buyer, someone who
    reset a password) who asks to be forgotten. As for a contact: the address goes on the suppression list
    (reason "erased"), its transactional messages keep only the hint, audit rows that quoted it get the hint.
    A contact's address is erased from its contact page instead, which also deletes the contact.
    Returns (hint, how many transactional messages were anonymised)."""
    try:
        address = normalise_email((typed or "").strip(), allow_test_domains=True)
    except InvalidEmail as error:
        raise ConsentError(f"Type one email address: {error.message}", field="email") from None
    contact = Contact.get_or_none((Contact.team == team) & (Contact.email == address))
    if contact is not None:
        raise ConsentError(f"{address} is a contact of this team: erase it from its contact page, which also "
                           "erases its transactional messages.", field="email")
    hint = suppression.hint("email", address)
    with db.atomic():
        suppression.suppress(team.id, "email", address, reason="erased")
        messages = tx_erasure.erase_address(team.id, address, hint)
        mentions = AuditLog.select(AuditLog.id, AuditLog.data).where(
            (AuditLog.team == team) & AuditLog.data.cast("TEXT").contains(address))
        for row in mentions:
            AuditLog.update(data=_replaced(row.data, address, hint)).where(AuditLog.id == row.id).execute()
        audit(team, user, "address.erased", "", hint=hint, tx_messages_anonymised=messages)
    return hint, messages


def _replaced(value, old, new):
    """`value` (a JSON document) with `old` replaced by `new` in every string in it."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_replaced(item, old, new) for item in value]
    if isinstance(value, dict):
        return {key: _replaced(item, old, new) for key, item in value.items()}
    return value
