"""/api/v1/contacts/{id}/activity: a contact's timeline, newest first, in cursor pages, through
app/contacts/timeline.py, so it holds the same events in the same words as the contact page."""
import datetime

from pydantic import Field

from app.api import pagination
from app.api.framework import Schema
from app.api.framework import Strict
from app.api.framework import operation
from app.contacts import timeline as timelines
from app.models import Contact
from app.teams.context import team_object_or_404


class ActivityOut(Schema):
    id: int
    type: str = Field(description="The event type: created, subscribed, sent, opened, clicked, bounced, ...")
    label: str = Field(description="The type in words, as the contact page shows it (\"Marked as spam\").")
    summary: str = Field(description="The details in a few words, as the contact page shows them; may be empty.")
    at: datetime.datetime
    campaign_id: int | None
    campaign_name: str | None = Field(description="Null when there is no campaign or it was deleted.")


class ActivityPage(Schema):
    data: list[ActivityOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    next: str | None = Field(description="The URL of the next page; null on the last page.")


class ActivityQuery(pagination.PageQuery, Strict):
    pass


def label_of(event):
    """The words the timeline shows for the event's type (a type it has no words for, tidied up)."""
    return timelines.EVENT_LABELS.get(event.type, event.type.replace("_", " ").capitalize())


def utc(moment):
    return moment.replace(tzinfo=datetime.timezone.utc) if moment and moment.tzinfo is None else moment


def activity_out(event):
    return ActivityOut(id=event.id, type=event.type, label=label_of(event), summary=timelines.describe_event(event),
                       at=utc(event.at), campaign_id=event.campaign_id,
                       campaign_name=getattr(event, "campaign_name", None))


@operation("/contacts/<int:contact_id>/activity", "GET", "view", ok=ActivityPage, query=ActivityQuery,
           tags=["contacts"])
def contact_activity(contact_id, query):
    """List a contact's activity, newest first"""
    contact = team_object_or_404(Contact, contact_id)
    events, older = timelines.timeline(contact, before=pagination.decode(query.cursor), limit=query.limit)
    next_cursor, next_url = pagination.next_link(older)
    return ActivityPage(data=[activity_out(event) for event in events], next_cursor=next_cursor, next=next_url)
