"""/api/v1/events: tell Loft that something happened to a contact ("order.paid", "trial.started"). The event starts
the automations it triggers, wakes runs waiting for it, and ends runs whose goal it is (app/automations/triggers.py).
The contact must exist already, as for a subscription: an event never creates one."""
from flask import g
from pydantic import Field
from pydantic import model_validator

from app.api.framework import ApiProblem
from app.api.framework import Schema
from app.api.framework import Strict
from app.api.framework import operation
from app.automations import triggers
from app.contacts import services as contact_services
from app.contacts.common import ContactError
from app.models import Contact
from tasks.automations import advance_soon

EventValue = str | int | float | bool | None
MAX_DATA_CHARS = 8_000  # the data travels with each run it starts: a few fields, not a document


class EventIn(Strict):
    name: str = Field(min_length=1, max_length=100, description="The event's name: letters, digits, '_', '.', ':' "
                      "or '-' (for example `order.paid`).")
    email: str | None = Field(None, max_length=320, description="The contact's address (or give `contact_id`).")
    contact_id: int | None = Field(None, ge=1, description="The contact's id (or give `email`).")
    data: dict[str, EventValue] = Field(default_factory=dict, max_length=50, description=(
        "Up to 50 flat values kept on each run the event starts (at most 8,000 characters in all)."))

    @model_validator(mode="after")
    def one_contact(self):
        if (self.email is None) == (self.contact_id is None):
            raise ValueError("give either email or contact_id")
        return self


class EventOut(Schema):
    name: str
    contact_id: int
    entered: int = Field(description="Automations the event started for the contact.")
    woken: int = Field(description="Runs that were waiting for this event and now go on.")
    goal: int = Field(description="Runs that ended because this event is their goal.")


def _contact(body):
    if body.contact_id is not None:
        contact = Contact.get_or_none((Contact.id == body.contact_id) & (Contact.team == g.team))
        field = "contact_id"
    else:
        try:
            address, _ = contact_services.normalise_email(body.email)
        except ContactError as exc:
            raise ApiProblem(422, "Some values were not accepted; see errors.", errors={"email": str(exc)}) from None
        contact = Contact.get_or_none((Contact.email == address) & (Contact.team == g.team))
        field = "email"
    if contact is None:
        raise ApiProblem(422, "There is no such contact in this team.", errors={field: "no such contact"})
    return contact


@operation("/events", "POST", "edit_content", ok=EventOut, status=200, body=EventIn, tags=["events"])
def record_event(body):
    """Record an event about a contact: it may start, wake or end automation runs"""
    size = sum(len(str(key)) + len(str(value)) for key, value in body.data.items())
    if size > MAX_DATA_CHARS:
        raise ApiProblem(422, "Some values were not accepted; see errors.",
                         errors={"data": f"keep the event's data under {MAX_DATA_CHARS:,} characters"})
    contact = _contact(body)
    try:
        outcome = triggers.record_event(g.team, contact, body.name, dict(body.data))
    except triggers.TriggerError as exc:
        raise ApiProblem(422, "Some values were not accepted; see errors.", errors=exc.errors or {"name": str(exc)})
    if outcome["entered"] or outcome["woken"]:
        advance_soon()  # a started or woken run moves in seconds, not at the next minute's tick
    return EventOut(name=body.name.strip(), contact_id=contact.id, **outcome)
