"""/api/v1/lists and subscriptions: lists (list, get, create, update, delete) and a contact on a list
(subscribe with or without double opt-in, take off), through app/contacts/ and app/consent/ services."""
import datetime
from typing import Literal

from flask import g
from flask import request
from pydantic import Field
from werkzeug.datastructures import MultiDict

from app.api.framework import ApiProblem
from app.api.framework import Schema
from app.api.framework import Strict
from app.api.framework import operation
from app.consent import forms as consent_forms
from app.contacts import lists as list_services
from app.contacts import services as contact_services
from app.contacts.common import ContactError
from app.models import LIST_VISIBILITIES
from app.models import SUBSCRIPTION_STATUSES
from app.models import Contact
from app.models import MailingList
from app.models import Subscription
from app.teams.context import team_object_or_404
from tasks.consent import send_confirmation

SubscriptionStatus = Literal[SUBSCRIPTION_STATUSES]


class ListOut(Schema):
    id: int
    name: str
    description: str
    double_opt_in: bool
    visibility: Literal[LIST_VISIBILITIES]
    subscribers: dict[str, int] = Field(description="Subscriptions by status.")


class ListsOut(Schema):
    data: list[ListOut]


class ListIn(Strict):
    name: str = Field(max_length=100)
    description: str = Field("", max_length=1000)
    double_opt_in: bool = False
    visibility: Literal[LIST_VISIBILITIES] = "private"


class ListPatch(Strict):
    name: str | None = Field(None, max_length=100)
    description: str | None = Field(None, max_length=1000)
    double_opt_in: bool | None = None
    visibility: Literal[LIST_VISIBILITIES] | None = None


class SubscriptionOut(Schema):
    list_id: int
    contact_id: int
    status: SubscriptionStatus
    created_at: datetime.datetime
    confirmation_sent: bool = Field(False, description="A confirmation email was queued (double opt-in).")


class SubscriptionsOut(Schema):
    data: list[SubscriptionOut]


class SubscribeIn(Strict):
    contact_id: int = Field(ge=1)
    double_opt_in: bool = Field(False, description=(
        "Send the list's confirmation email; the contact is subscribed only once they click its link."))


def utc(moment):
    return moment.replace(tzinfo=datetime.timezone.utc) if moment and moment.tzinfo is None else moment


def list_out(mailing_list, counts=None):
    counts = counts if counts is not None else list_services.list_counts([mailing_list.id])[mailing_list.id]
    return ListOut(id=mailing_list.id, name=mailing_list.name, description=mailing_list.description,
                   double_opt_in=mailing_list.double_opt_in, visibility=mailing_list.visibility, subscribers=counts)


def subscription_out(subscription, sent=False):
    return SubscriptionOut(list_id=subscription.list_id, contact_id=subscription.contact_id,
                           status=subscription.status, created_at=utc(subscription.created_at),
                           confirmation_sent=sent)


def list_form(values):
    """The list form the services read: a checkbox is present when ticked."""
    form = MultiDict({name: value for name, value in values.items() if name != "double_opt_in"})
    if values.get("double_opt_in"):
        form["double_opt_in"] = "on"
    return form


@operation("/lists", "GET", "view", ok=ListsOut, tags=["lists"])
def list_lists():
    """List the team's lists"""
    lists = list_services.lists_of(g.team)
    counts = list_services.list_counts([mailing_list.id for mailing_list in lists])
    return ListsOut(data=[list_out(mailing_list, counts[mailing_list.id]) for mailing_list in lists])


@operation("/lists/<int:list_id>", "GET", "view", ok=ListOut, tags=["lists"])
def get_list(list_id):
    """Get a list"""
    return list_out(team_object_or_404(MailingList, list_id))


@operation("/lists", "POST", "edit_content", ok=ListOut, status=201, body=ListIn, tags=["lists"], location="/lists/{id}")
def create_list(body):
    """Create a list"""
    return list_out(list_services.create_list(g.team, list_form(body.model_dump())))


@operation("/lists/<int:list_id>", "PATCH", "edit_content", ok=ListOut, body=ListPatch, tags=["lists"])
def update_list(list_id, body):
    """Change a list: only the values given"""
    mailing_list = team_object_or_404(MailingList, list_id)
    values = {"name": mailing_list.name, "description": mailing_list.description,
              "double_opt_in": mailing_list.double_opt_in, "visibility": mailing_list.visibility}
    values.update(body.model_dump(exclude_none=True))
    return list_out(list_services.update_list(g.team, mailing_list, list_form(values)))


@operation("/lists/<int:list_id>", "DELETE", "edit_content", tags=["lists"])
def delete_list(list_id):
    """Delete a list and its subscriptions (the contacts stay)"""
    list_services.delete_list(g.team, team_object_or_404(MailingList, list_id))


@operation("/contacts/<int:contact_id>/subscriptions", "GET", "view", ok=SubscriptionsOut, tags=["subscriptions"])
def contact_subscriptions(contact_id):
    """List a contact's subscriptions"""
    contact = team_object_or_404(Contact, contact_id)
    return SubscriptionsOut(data=[subscription_out(sub) for sub in contact_services.subscriptions_of(contact)])


@operation("/lists/<int:list_id>/subscriptions", "POST", "edit_content", ok=SubscriptionOut, status=201,
           body=SubscribeIn, tags=["subscriptions"], location="/lists/{list_id}/subscriptions/{contact_id}")
def subscribe(list_id, body):
    """Subscribe a contact to a list, or ask them to confirm by email"""
    mailing_list = team_object_or_404(MailingList, list_id)
    contact = Contact.get_or_none((Contact.id == body.contact_id) & (Contact.team == g.team))
    if contact is None:
        raise ApiProblem(422, "There is no such contact in this team.", errors={"contact_id": "no such contact"})
    if not body.double_opt_in:
        contact_services.add_to_list(g.team, contact, mailing_list)
        return subscription_out(Subscription.get((Subscription.contact == contact)
                                                 & (Subscription.list == mailing_list)))
    problem = contact_services.subscription_problem(g.team, contact)
    if problem:
        raise ContactError(problem, field="contact_id")
    outcome = consent_forms.ask_to_confirm(mailing_list, contact, request.remote_addr)
    if outcome.state == "already":
        raise ContactError(f"{contact.email} is already on “{mailing_list.name}”.", field="contact_id")
    if outcome.send_confirmation:
        send_confirmation(mailing_list.id, outcome.subscription.id)
    return subscription_out(outcome.subscription, sent=outcome.send_confirmation)


@operation("/lists/<int:list_id>/subscriptions/<int:contact_id>", "GET", "view", ok=SubscriptionOut,
           tags=["subscriptions"])
def get_subscription(list_id, contact_id):
    """Get a contact's subscription to a list"""
    mailing_list = team_object_or_404(MailingList, list_id)
    contact = team_object_or_404(Contact, contact_id)
    subscription = Subscription.get_or_none((Subscription.contact == contact) & (Subscription.list == mailing_list))
    if subscription is None:
        raise ApiProblem(404, f"{contact.email} is not on “{mailing_list.name}”.")
    return subscription_out(subscription)


@operation("/lists/<int:list_id>/subscriptions/<int:contact_id>", "DELETE", "edit_content", tags=["subscriptions"])
def unsubscribe(list_id, contact_id):
    """Take a contact off a list"""
    mailing_list = team_object_or_404(MailingList, list_id)
    contact = team_object_or_404(Contact, contact_id)
    if not contact_services.remove_from_list(g.team, contact, mailing_list):
        raise ApiProblem(404, f"{contact.email} is not on “{mailing_list.name}”.")
