"""/api/v1/suppressions: the team's suppression list (list, add, remove), through app/consent/services.py.
Only a hash of each address or domain is kept, so an entry shows its hint, and removing one takes the
exact address or domain again, as on the page."""
import datetime
from typing import Literal

from flask import g
from pydantic import Field

from app.api import pagination
from app.api.framework import Schema
from app.api.framework import Strict
from app.api.framework import operation
from app.consent import services as consent
from app.models import Suppression
from app.teams.context import team_object_or_404


class SuppressionOut(Schema):
    id: int
    kind: Literal["email", "domain"]
    hint: str = Field(description="A part of the address or domain, enough to recognise it.")
    reason: str
    created_at: datetime.datetime


class SuppressionPage(Schema):
    data: list[SuppressionOut]
    next_cursor: str | None
    next: str | None


class SuppressionIn(Strict):
    value: str = Field(max_length=320, description="An address (ann@example.com) or a domain (example.com).")


class SuppressionRemoval(Strict):
    confirm: str = Field(max_length=320, description="The entry's exact address or domain.")


class SuppressionListQuery(pagination.PageQuery, Strict):
    pass


def suppression_out(entry):
    created = entry.created_at
    return SuppressionOut(id=entry.id, kind=entry.kind, hint=entry.hint, reason=entry.reason,
                          created_at=created.replace(tzinfo=datetime.timezone.utc) if created.tzinfo is None
                          else created)


@operation("/suppressions", "GET", "view", ok=SuppressionPage, query=SuppressionListQuery, tags=["suppressions"])
def list_suppressions(query):
    """List the suppression list, newest first"""
    entries, older = consent.entries_page(g.team, before=pagination.decode(query.cursor), size=query.limit)
    next_cursor, next_url = pagination.next_link(older)
    return SuppressionPage(data=[suppression_out(entry) for entry in entries], next_cursor=next_cursor,
                           next=next_url)


@operation("/suppressions/<int:entry_id>", "GET", "view", ok=SuppressionOut, tags=["suppressions"])
def get_suppression(entry_id):
    """Get a suppression list entry"""
    return suppression_out(team_object_or_404(Suppression, entry_id))


@operation("/suppressions", "POST", "edit_content", ok=SuppressionOut, status=201, body=SuppressionIn,
           tags=["suppressions"], location="/suppressions/{id}")
def add_suppression(body):
    """Suppress an address or a whole domain (active contacts become suppressed)"""
    entry, _, _ = consent.add(g.team, None, body.value)
    return suppression_out(entry)


@operation("/suppressions/<int:entry_id>", "DELETE", "edit_content", query=SuppressionRemoval,
           tags=["suppressions"])
def remove_suppression(entry_id, query):
    """Remove an entry; `confirm` is its exact address or domain"""
    consent.remove(g.team, None, team_object_or_404(Suppression, entry_id), query.confirm)
