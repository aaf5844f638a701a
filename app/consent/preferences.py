"""The preference center: a contact's own page, reached by a signed link.

The link is the credential. It names the team, the contact and a keyed
digest of the address, signed with the instance secret: it never expires
(old emails keep working) but cannot be altered or guessed, and it stops
working when the contact is deleted or changes address. Campaigns put
preference_url(contact) in every message.

"Unsubscribe from everything" takes effect at once: the contact becomes
"unsubscribed", every subscription is ended, and the address goes on the
suppression list (reason "unsubscribed") so that deleting and re-importing
the contact cannot bring them back. From the same personal link the person
may change their mind: choosing lists again lifts only that "unsubscribed"
entry. Bounces, complaints and suppressions made by the team are never
lifted from here.
"""

from app import events
from app.automations import triggers
from app import settings
from app import tokens
from app.consent import suppression
from app.consent.services import ConsentError
from app.db import db
from app.models import Contact
from app.models import ContactStatus
from app.models import EventType
from app.models import MailingList
from app.models import Subscription
from app.models import Suppression
from app.models import Team
from app.models import utcnow

SOURCE = "preference_center"
WORDING = "I chose these lists on my preference page."
STOPPED = {"bounced": "Emails to this address bounced, so it receives nothing from us.",
           "complained": "This address reported our email as spam, so it receives nothing from us.",
           "suppressed": "This address is on our do-not-mail list, so it receives nothing from us."}


def preference_token(contact):
    return tokens.sign("preferences", contact.team_id, contact.id, tokens.email_digest(contact.email))


def preference_path(contact):
    return f"/p/{preference_token(contact)}"


def preference_url(contact):
    """The absolute link to the contact's preference center, for emails (works outside a request)."""
    return settings.base_url() + preference_path(contact)


def contact_for_token(token):
    """The contact a preference link names, or None when it is tampered with or no longer valid."""
    ids = tokens.verify("preferences", token)
    if ids is None or len(ids) != 3:
        return None
    team_id, contact_id, digest = ids
    contact = (Contact.select(Contact, Team).join(Team)
               .where((Contact.id == contact_id) & (Contact.team == team_id)).first())
    if contact is None or tokens.email_digest(contact.email) != digest:
        return None
    return contact


def _blocking_entries(contact):
    """Suppression entries that the person cannot lift themselves (anything but their own unsubscribe)."""
    return [e for e in suppression.entries_for(contact.team_id, contact.email)
            if not (e.kind == "email" and e.reason == "unsubscribed")]


def stopped_reason(contact):
    """Why nothing can be changed on this page, or None when the person may choose lists."""
    if contact.status in STOPPED:
        return STOPPED[contact.status]
    if _blocking_entries(contact):
        return STOPPED["suppressed"]
    return None


def _public_lists(team_id):
    """The lists a person may see and choose here: private lists appear nowhere public, not even to
    their own subscribers (as in Mailchimp and listmonk); "unsubscribe from everything" still ends them."""
    return MailingList.select().where((MailingList.team == team_id) & (MailingList.visibility == "public"))


def choices(contact):
    """[(list, subscription status or None)] for every public list of the team."""
    lists = list(_public_lists(contact.team_id).order_by(MailingList.name))
    subs = {s.list_id: s.status for s in Subscription.select().where(Subscription.contact == contact)}
    return [(lst, subs.get(lst.id)) for lst in lists]


def save(contact, list_ids, ip):
    """Subscribe the contact to exactly the chosen public lists; returns (added, removed) list names.
    Private lists are left as they are: the page does not show them, so not ticking them means nothing.

    Ticking a list is the person's own act through their own link, so it
    counts as confirmed (no second email) and is recorded as consent.
    """
    now = utcnow()
    with db.atomic():
        contact = Contact.get_by_id(contact.id)
        problem = stopped_reason(contact)
        if problem:
            raise ConsentError(problem)
        lists = list(_public_lists(contact.team_id))
        wanted = {lst.id for lst in lists if lst.id in set(list_ids)}
        subs = {s.list_id: s for s in Subscription.select().where(Subscription.contact == contact)}
        added, removed = [], []
        joined, left = [], []
        if wanted and contact.status == ContactStatus.UNSUBSCRIBED:
            _resubscribe(contact, now)
        for lst in lists:
            sub = subs.get(lst.id)
            if lst.id in wanted and (sub is None or sub.status != "subscribed"):
                if sub is None:
                    Subscription.create(contact=contact, list=lst, status="subscribed", created_at=now,
                                        confirmed_at=now)
                else:
                    Subscription.update(status="subscribed", confirmed_at=now).where(Subscription.id == sub.id).execute()
                events.record(contact.team_id, contact, EventType.SUBSCRIBED, {"list_id": lst.id, "list": lst.name,
                              "source": SOURCE, "status": "subscribed"})
                added.append(lst.name)
                joined.append(lst.id)
            elif lst.id not in wanted and sub is not None and sub.status != "unsubscribed":
                Subscription.update(status="unsubscribed", unsubscribed_at=now).where(Subscription.id == sub.id).execute()
                events.record(contact.team_id, contact, EventType.UNSUBSCRIBED, {"list_id": lst.id, "list": lst.name,
                              "source": SOURCE})
                removed.append(lst.name)
                left.append(lst.id)
        if added:
            Contact.update(consent_source=SOURCE, consent_at=now, consent_ip=ip or "", consent_text=WORDING,
                           updated_at=now).where(Contact.id == contact.id).execute()
        for list_id in left:
            triggers.left_list(contact.team_id, contact.id, list_id, now)
    for list_id in joined:  # after the commit; ticking a list on the person's own page is a confirmed join
        triggers.list_joined(contact.team_id, [contact.id], list_id, now, source=SOURCE)
    if joined or left:
        triggers.contact_changed(contact.team_id, contact.id, now)
    return added, removed


def _resubscribe(contact, now):
    Suppression.delete().where(
        (Suppression.team == contact.team_id) & (Suppression.kind == "email") & (Suppression.reason == "unsubscribed")
        & (Suppression.value_hash == suppression.value_hash(contact.team_id, "email", contact.email))).execute()
    Contact.update(status=ContactStatus.ACTIVE, updated_at=now).where(Contact.id == contact.id).execute()
    events.record(contact.team_id, contact, EventType.STATUS_CHANGED,
                  {"from": "unsubscribed", "to": "active", "reason": SOURCE})
    contact.status = "active"


def unsubscribe_everything(contact, source=SOURCE, campaign_id=None):
    """End every subscription and stop all email to the contact, at once; returns the lists left.

    Also meant for campaigns' one-click unsubscribe, which passes
    its own source and the campaign it came from.
    """
    now = utcnow()
    with db.atomic():
        contact = Contact.get_by_id(contact.id)
        ending = list(Subscription.select(Subscription, MailingList).join(MailingList)
                      .where((Subscription.contact == contact) & (Subscription.status != "unsubscribed")))
        (Subscription.update(status="unsubscribed", unsubscribed_at=now)
         .where((Subscription.contact == contact) & (Subscription.status != "unsubscribed")).execute())
        if contact.status == ContactStatus.ACTIVE:
            Contact.update(status=ContactStatus.UNSUBSCRIBED, updated_at=now).where(Contact.id == contact.id).execute()
            events.record(contact.team_id, contact, EventType.STATUS_CHANGED,
                          {"from": "active", "to": "unsubscribed", "reason": source})
        suppression.suppress(contact.team_id, "email", contact.email, reason="unsubscribed")
        triggers.contacts_stopped([contact.id], "unsubscribed", now)
        events.record(contact.team_id, contact, EventType.UNSUBSCRIBED,
                      {"all": True, "lists": [s.list.name for s in ending], "source": source}, campaign_id=campaign_id)
    return [s.list.name for s in ending]
