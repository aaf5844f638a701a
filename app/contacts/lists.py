"""Mailing lists: create, rename and delete them, and count their subscribers."""
from peewee import fn

from app.contacts.common import ContactError
from app.contacts.common import audit
from app.db import db
from app.models import LIST_VISIBILITIES
from app.models import SUBSCRIPTION_STATUSES
from app.models import MailingList
from app.models import Subscription


def get_list(team, list_id):
    return MailingList.get_or_none((MailingList.id == list_id) & (MailingList.team == team))


def lists_of(team):
    return list(MailingList.select().where(MailingList.team == team).order_by(fn.lower(MailingList.name)))


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
        audit(team, user, "list.deleted", f"list:{mailing_list.id}", name=mailing_list.name)


def list_counts(list_ids):
    """{list_id: {status: count}} from the (list, status, contact) index."""
    counts = {list_id: dict.fromkeys(SUBSCRIPTION_STATUSES, 0) for list_id in list_ids}
    if not counts:
        return counts
    rows = (Subscription.select(Subscription.list, Subscription.status, fn.COUNT(Subscription.id))
            .where(Subscription.list << list(counts)).group_by(Subscription.list, Subscription.status).tuples())
    for list_id, status, count in rows:
        counts[list_id][status] = count
    return counts


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
