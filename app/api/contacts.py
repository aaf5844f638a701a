"""/api/v1/contacts: list (cursor pages, the contact list's filters), get by id or address, create, update,
delete. Each operation calls app/contacts/ services, the same ones the contact pages call."""
import datetime
from typing import Literal

from flask import abort
from flask import g
from pydantic import Field
from werkzeug.datastructures import MultiDict

from app.api import pagination
from app.api.framework import ApiProblem
from app.api.framework import Schema
from app.api.framework import Strict
from app.api.framework import operation
from app.contacts import query as contact_query
from app.contacts import services
from app.contacts.common import ContactError
from app.contacts.common import NotFound
from app.contacts.fields import fields_of
from app.contacts.tags import tags_of
from app.contacts.tags import tags_of_contacts
from app.db import db
from app.db import statement
from app.models import CONTACT_STATUSES
from app.models import SUBSCRIPTION_STATUSES
from app.models import Contact
from app.models import ContactTag
from app.models import Tag
from app.teams.context import team_object_or_404

ContactStatusName = Literal[tuple(str(status) for status in CONTACT_STATUSES)]
FieldValue = str | int | float | bool | None


class ContactOut(Schema):
    id: int
    email: str
    name: str
    status: ContactStatusName
    fields: dict[str, FieldValue] = Field(description="Custom field values by field key.")
    tags: list[str]
    source: str
    created_at: datetime.datetime
    updated_at: datetime.datetime


class ContactPage(Schema):
    data: list[ContactOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    next: str | None = Field(description="The URL of the next page; null on the last page.")


class ContactQuery(pagination.PageQuery, Strict):
    status: ContactStatusName | None = None
    list: int | None = Field(None, ge=1, description="Only contacts on this list.")
    list_status: Literal[SUBSCRIPTION_STATUSES] | None = Field(
        None, description="With `list`: only this subscription status.")
    tag: int | None = Field(None, ge=1, description="Only contacts with this tag (its id).")
    search: str | None = Field(None, max_length=200, description=(
        "Text with an @ finds addresses starting with it (\"@example.com\": a domain); other text is found in "
        "names and addresses among the next 50,000 contacts of the walk."))


class ContactIn(Strict):
    email: str = Field(max_length=320)
    name: str = Field("", max_length=200)
    fields: dict[str, FieldValue] = Field(default_factory=dict, description="Values by custom field key.")
    lists: list[int] = Field(default_factory=list, max_length=100, description="Subscribe to these lists.")
    consent_source: str = Field("", max_length=500)
    consent_text: str = Field("", max_length=5000)


class ContactPatch(Strict):
    email: str | None = Field(None, max_length=320)
    name: str | None = Field(None, max_length=200)
    status: ContactStatusName | None = None
    fields: dict[str, FieldValue] | None = Field(None, description="Only the keys given change; null clears one.")


def utc(moment):
    return moment.replace(tzinfo=datetime.timezone.utc) if moment and moment.tzinfo is None else moment


def contact_out(contact, tags=None):
    attributes = services.attributes_of(contact)
    return ContactOut(id=contact.id, email=contact.email, name=contact.name, status=contact.status,
                      fields={key: value for key, value in attributes.items()
                              if value is None or isinstance(value, (str, int, float, bool))},
                      tags=[tag.name for tag in (tags_of(contact) if tags is None else tags)],
                      source=contact.source, created_at=utc(contact.created_at), updated_at=utc(contact.updated_at))


def form_of(values, fields):
    """The form the contact services read, from an API body: custom fields become attr.<key>."""
    known = {field.key for field in fields_of(g.team)}
    unknown = sorted(set(fields or {}) - known)
    if unknown:
        raise ApiProblem(422, "There is no custom field with these keys; create them first.",
                         errors={f"fields.{key}": "no such custom field" for key in unknown})
    form = MultiDict({name: value for name, value in values.items() if value is not None})
    for key, value in (fields or {}).items():
        form[f"attr.{key}"] = "" if value is None else ("yes" if value is True else "no" if value is False
                                                        else str(value))
    return form


def field_errors(problem):
    """A service's form field names (attr.<key>) as the API's (fields.<key>)."""
    problem.errors = {(f"fields.{name[5:]}" if name.startswith("attr.") else name): message
                      for name, message in problem.errors.items()}
    return problem


@operation("/contacts", "GET", "view", ok=ContactPage, query=ContactQuery, tags=["contacts"])
def list_contacts(query):
    """List contacts, newest first"""
    contact_filter = contact_query.ContactFilter(q=(query.search or "").strip(), list_id=query.list,
                                                 list_status=query.list_status or "", status=query.status or "",
                                                 tag_id=query.tag)
    try:
        resolved = contact_query.resolve_filter(g.team, contact_filter)
    except NotFound as missing:
        raise ApiProblem(404, f"There is no such {missing} in this team.", errors={str(missing): "not found"})
    page = contact_query.contact_page(g.team, resolved, before=pagination.decode(query.cursor), size=query.limit)
    tags = tags_of_contacts([contact.id for contact in page.contacts])
    next_cursor, next_url = pagination.next_link(page.older)
    return ContactPage(data=[contact_out(contact, tags.get(contact.id, [])) for contact in page.contacts],
                       next_cursor=next_cursor, next=next_url)


# The read of one contact is the API's hot path (docs/benchmarks.md): peewee building its two queries cost
# more than running them, so their SQL text is built once per kind of database and run with each request's
# values (app.db.statement), into the same model instances team_object_or_404 and tags_of give.
_built = {}


def _built_once(name, query):
    key = (name, db.param)
    if key not in _built:
        _built[key] = statement(query())
    return _built[key]


def _one_contact():
    return Contact.select().where((Contact.team == 0) & (Contact.id == 0))


def _tags_of_one():
    return Tag.select(Tag.name).join(ContactTag).where(ContactTag.contact == 0).order_by(Tag.name_key)


@operation("/contacts/<int:contact_id>", "GET", "view", ok=ContactOut, tags=["contacts"])
def get_contact(contact_id):
    """Get a contact"""
    contact = next(iter(Contact.raw(_built_once("contact", _one_contact), g.team.id, contact_id)), None)
    if contact is None:
        abort(404)
    return contact_out(contact, list(Tag.raw(_built_once("tags", _tags_of_one), contact.id)))


@operation("/contacts/by-email/<path:email>", "GET", "view", ok=ContactOut, tags=["contacts"])
def get_contact_by_email(email):
    """Get a contact by address"""
    try:
        address, _ = services.normalise_email(email)
    except ContactError:
        raise ApiProblem(404, "There is no contact with this address in this team.") from None
    return contact_out(team_object_or_404(Contact, email=address))


@operation("/contacts", "POST", "edit_content", ok=ContactOut, status=201, body=ContactIn, tags=["contacts"],
           location="/contacts/{id}")
def create_contact(body):
    """Create a contact"""
    form = form_of(body.model_dump(exclude={"fields", "lists"}), body.fields)
    form.setlist("lists", [str(list_id) for list_id in body.lists])
    try:
        contact = services.create_contact(g.team, form)
    except ContactError as problem:
        raise field_errors(problem)
    return contact_out(contact)


@operation("/contacts/<int:contact_id>", "PATCH", "edit_content", ok=ContactOut, body=ContactPatch,
           tags=["contacts"])
def update_contact(contact_id, body):
    """Change a contact: only the values given"""
    contact = team_object_or_404(Contact, contact_id)
    values = {"email": contact.email, "name": contact.name, "status": contact.status}
    values.update(body.model_dump(exclude={"fields"}, exclude_none=True))
    try:
        contact = services.update_contact(g.team, contact, form_of(values, body.fields))
    except ContactError as problem:
        raise field_errors(problem)
    return contact_out(contact)


@operation("/contacts/<int:contact_id>", "DELETE", "edit_content", tags=["contacts"])
def delete_contact(contact_id):
    """Delete a contact with its subscriptions"""
    services.delete_contact(g.team, team_object_or_404(Contact, contact_id))
