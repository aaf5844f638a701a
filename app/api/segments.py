"""/api/v1/segments: saved rule sets (list, get, create, update, delete) and their counts, the stored
segment's and a preview of unsaved rules like the editor's live count. Every operation calls
app/segments/services.py, the same functions the segment pages call, so the compiler's checks refuse what
the editor refuses, with each message at the path of its rule."""
import datetime
from typing import Any

from flask import g
from pydantic import Field

from app.api.framework import ApiProblem
from app.api.framework import Schema
from app.api.framework import Strict
from app.api.framework import operation
from app.models import Segment
from app.segments import services
from app.segments.compiler import MAX_RULES
from app.segments.compiler import Catalogue
from app.segments.compiler import SegmentError
from app.teams.context import team_object_or_404

RULES_HELP = (
    "A group {\"op\": \"and\" | \"or\", \"rules\": [...]} whose rules are rules {\"field\", \"operator\", "
    "\"value\"} or groups (nested at most two levels, at most " f"{MAX_RULES} in all). Fields: email, domain, "
    "name, status, created_at, last_activity_at, list, tag, campaign and custom:<key>; lists, tags and "
    "campaigns are named by id. The form the segment editor stores.")
RULES_EXAMPLE = {"op": "and", "rules": [{"field": "status", "operator": "is", "value": "active"},
                                        {"op": "or", "rules": [{"field": "list", "operator": "in_list", "value": 3},
                                                               {"field": "custom:plan", "operator": "is",
                                                                "value": "pro"}]}]}
Rules = dict[str, Any]


class SegmentOut(Schema):
    id: int
    name: str
    rules: Rules = Field(description=RULES_HELP)
    description: str = Field(description="The rules in words, as the segment list shows them.")
    created_at: datetime.datetime
    updated_at: datetime.datetime


class SegmentsOut(Schema):
    data: list[SegmentOut]


class SegmentIn(Strict):
    name: str = Field(max_length=services.MAX_NAME)
    rules: Rules = Field(description=RULES_HELP, examples=[RULES_EXAMPLE])


class SegmentPatch(Strict):
    name: str | None = Field(None, max_length=services.MAX_NAME)
    rules: Rules | None = Field(None, description="The whole new rule tree (it replaces the old one).")


class RulesIn(Strict):
    rules: Rules = Field(description=RULES_HELP, examples=[RULES_EXAMPLE])


class CountOut(Schema):
    count: int | None = Field(description="Contacts the rules match now; null when the rules no longer hold.")
    problem: str | None = Field(None, description=(
        "Why the stored rules cannot be counted (a list, tag or campaign they name was deleted); null when "
        "counted."))


def utc(moment):
    return moment.replace(tzinfo=datetime.timezone.utc) if moment and moment.tzinfo is None else moment


def segment_out(segment, catalogue=None):
    rules = services.rules_of(segment)
    return SegmentOut(id=segment.id, name=segment.name, rules=rules,
                      description=services.describe(g.team, rules, catalogue), created_at=utc(segment.created_at),
                      updated_at=utc(segment.updated_at))


def rule_path(path):
    """The compiler's rule path ("1.2", "" for the whole tree) as the body's path ("rules.1.rules.2")."""
    return ".".join(["rules"] + [f"rules.{index}" for index in path.split(".")]) if path else "rules"


def body_errors(problem):
    """A SegmentError with its messages keyed by where they are in the request body."""
    return ApiProblem(422, problem.message, errors={
        (name if name == "name" else rule_path(name)): message for name, message in problem.errors.items()})


@operation("/segments", "GET", "view", ok=SegmentsOut, tags=["segments"])
def list_segments():
    """List the segments, by name"""
    catalogue = Catalogue(g.team.id)
    return SegmentsOut(data=[segment_out(segment, catalogue) for segment in services.list_segments(g.team)])


@operation("/segments/<int:segment_id>", "GET", "view", ok=SegmentOut, tags=["segments"])
def get_segment(segment_id):
    """Get a segment"""
    return segment_out(team_object_or_404(Segment, segment_id))


@operation("/segments", "POST", "edit_content", ok=SegmentOut, status=201, body=SegmentIn, tags=["segments"],
           location="/segments/{id}")
def create_segment(body):
    """Create a segment"""
    try:
        segment = services.create_segment(g.team, body.name, body.rules)
    except SegmentError as problem:
        raise body_errors(problem) from None
    return segment_out(segment)


@operation("/segments/<int:segment_id>", "PATCH", "edit_content", ok=SegmentOut, body=SegmentPatch,
           tags=["segments"])
def update_segment(segment_id, body):
    """Rename a segment or replace its rules"""
    segment = team_object_or_404(Segment, segment_id)
    name = segment.name if body.name is None else body.name
    rules = services.rules_of(segment) if body.rules is None else body.rules
    try:
        segment = services.update_segment(g.team, segment, name, rules)
    except SegmentError as problem:
        raise body_errors(problem) from None
    return segment_out(segment)


@operation("/segments/<int:segment_id>", "DELETE", "edit_content", tags=["segments"], problems=(409,))
def delete_segment(segment_id):
    """Delete a segment no draft, scheduled or sending campaign uses"""
    try:
        services.delete_segment(g.team, team_object_or_404(Segment, segment_id))
    except SegmentError as problem:
        raise ApiProblem(409, problem.message) from None


@operation("/segments/<int:segment_id>/count", "GET", "view", ok=CountOut, tags=["segments"])
def count_segment(segment_id):
    """Count the contacts a stored segment matches now"""
    segment = team_object_or_404(Segment, segment_id)
    try:
        return CountOut(count=services.count_matching(g.team.id, services.rules_of(segment)))
    except SegmentError as problem:
        return CountOut(count=None, problem=problem.message)


@operation("/segments/count", "POST", "edit_content", ok=CountOut, body=RulesIn, tags=["segments"])
def count_rules(body):
    """Count the contacts unsaved rules would match (the editor's live count)"""
    try:
        return CountOut(count=services.count_matching(g.team.id, body.rules))
    except SegmentError as problem:
        raise body_errors(problem) from None
