"""/api/v1/fields: the team's custom contact fields (list, create, rename, delete), through
app/contacts/fields.py."""
from typing import Literal

from flask import g
from pydantic import Field
from werkzeug.datastructures import MultiDict

from app.api.framework import Schema
from app.api.framework import Strict
from app.api.framework import operation
from app.contacts import fields as field_services
from app.models import FIELD_TYPES
from app.models import CustomField
from app.teams.context import team_object_or_404

FieldType = Literal[FIELD_TYPES]


class FieldOut(Schema):
    id: int
    key: str = Field(description="The name in a contact's `fields` and in merge tags; never changes.")
    label: str
    type: FieldType


class FieldsOut(Schema):
    data: list[FieldOut]


class FieldIn(Strict):
    label: str = Field(max_length=100)
    key: str = Field("", max_length=40, description="Made from the label when left out.")
    type: FieldType = "text"


class FieldPatch(Strict):
    label: str = Field(max_length=100)


def field_out(field):
    return FieldOut(id=field.id, key=field.key, label=field.label, type=field.type)


@operation("/fields", "GET", "view", ok=FieldsOut, tags=["fields"])
def list_fields():
    """List the custom fields"""
    return FieldsOut(data=[field_out(field) for field in field_services.fields_of(g.team)])


@operation("/fields/<int:field_id>", "GET", "view", ok=FieldOut, tags=["fields"])
def get_field(field_id):
    """Get a custom field"""
    return field_out(team_object_or_404(CustomField, field_id))


@operation("/fields", "POST", "edit_content", ok=FieldOut, status=201, body=FieldIn, tags=["fields"],
           location="/fields/{id}")
def create_field(body):
    """Create a custom field"""
    return field_out(field_services.create_field(g.team, MultiDict(body.model_dump())))


@operation("/fields/<int:field_id>", "PATCH", "edit_content", ok=FieldOut, body=FieldPatch, tags=["fields"])
def update_field(field_id, body):
    """Rename a custom field (its key and type stay)"""
    field = team_object_or_404(CustomField, field_id)
    return field_out(field_services.update_field(g.team, field, MultiDict(body.model_dump())))


@operation("/fields/<int:field_id>", "DELETE", "edit_content", tags=["fields"])
def delete_field(field_id):
    """Delete a custom field and its values on every contact"""
    field_services.delete_field(g.team, team_object_or_404(CustomField, field_id))
