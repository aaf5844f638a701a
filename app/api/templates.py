"""/api/v1/templates: the team's email templates: list (cursor pages), get, create, update, delete, through
app/email_templates/services.py, the services the template pages call."""
import datetime
from typing import Any
from typing import Literal

from flask import g
from pydantic import Field
from werkzeug.datastructures import MultiDict

from app.api import pagination
from app.api.contacts import utc
from app.api.framework import ApiProblem
from app.api.framework import Schema
from app.api.framework import Strict
from app.api.framework import operation
from app.campaigns import drafts
from app.content.sandbox import MAX_SOURCE
from app.email_templates import services
from app.models import Template
from app.teams.context import team_object_or_404

TemplateKind = Literal["html", "markdown", "blocks"]


class TemplateOut(Schema):
    id: int
    name: str
    kind: TemplateKind
    body: str = Field(description="The HTML or Markdown source; for a blocks template, its rendered HTML.")
    blocks: dict[str, Any] | None = Field(description="A blocks template's block document (read only here: "
                                                      "blocks change in the block editor).")
    is_layout: bool = Field(description="An HTML template with a {{ content }} slot: a campaign can use it as "
                                        "its layout (`template_id`).")
    created_at: datetime.datetime
    updated_at: datetime.datetime


class TemplatePage(Schema):
    data: list[TemplateOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    next: str | None = Field(description="The URL of the next page; null on the last page.")


class TemplateQuery(pagination.PageQuery, Strict):
    pass


class TemplateIn(Strict):
    name: str = Field(max_length=services.MAX_NAME)
    kind: TemplateKind = "html"
    body: str = Field("", max_length=MAX_SOURCE, description="HTML or Markdown; leave out for a blocks template.")
    starter: str | None = Field(None, max_length=100, description=(
        "A blocks template starts from this built-in block template (its key); without it, with no blocks."))


class TemplatePatch(Strict):
    name: str | None = Field(None, max_length=services.MAX_NAME)
    kind: Literal["html", "markdown"] | None = None
    body: str | None = Field(None, max_length=MAX_SOURCE)


def template_out(template):
    return TemplateOut(id=template.id, name=template.name, kind=template.kind, body=template.body or "",
                       blocks=template.blocks if isinstance(template.blocks, dict) else None,
                       is_layout=drafts.layout_slot(template), created_at=utc(template.created_at),
                       updated_at=utc(template.updated_at))


@operation("/templates", "GET", "view", ok=TemplatePage, query=TemplateQuery, tags=["templates"])
def list_templates(query):
    """List templates, newest first"""
    templates, older = services.template_page(g.team, before=pagination.decode(query.cursor), size=query.limit)
    next_cursor, next_url = pagination.next_link(older)
    return TemplatePage(data=[template_out(template) for template in templates], next_cursor=next_cursor,
                        next=next_url)


@operation("/templates/<int:template_id>", "GET", "view", ok=TemplateOut, tags=["templates"])
def get_template(template_id):
    """Get a template"""
    return template_out(team_object_or_404(Template, template_id))


@operation("/templates", "POST", "edit_content", ok=TemplateOut, status=201, body=TemplateIn, tags=["templates"],
           location="/templates/{id}")
def create_template(body):
    """Create a template"""
    if body.kind == "blocks" and body.body:
        raise ApiProblem(422, "A blocks template is made of blocks, not a body: leave `body` out.",
                         errors={"body": "not used by a blocks template"})
    if body.starter and (body.kind != "blocks" or services.block_starter(body.starter) is None):
        raise ApiProblem(422, "`starter` names a built-in block template, for a blocks template only.",
                         errors={"starter": "no such block template" if body.kind == "blocks"
                                 else "only for kind \"blocks\""})
    return template_out(services.create_template(g.team, MultiDict(body.model_dump(exclude_none=True))))


@operation("/templates/<int:template_id>", "PATCH", "edit_content", ok=TemplateOut, body=TemplatePatch,
           tags=["templates"])
def update_template(template_id, body):
    """Change a template: only the values given"""
    template = team_object_or_404(Template, template_id)
    if template.kind == "blocks" and (body.kind is not None or body.body is not None):
        field = "kind" if body.kind is not None else "body"
        raise ApiProblem(422, "A blocks template changes in the block editor; only its name changes here.",
                         errors={field: "a blocks template keeps its blocks"})
    form = {"name": template.name, "kind": template.kind, "body": template.body or ""}
    form.update(body.model_dump(exclude_none=True))
    return template_out(services.update_template(g.team, template, MultiDict(form)))


@operation("/templates/<int:template_id>", "DELETE", "edit_content", tags=["templates"])
def delete_template(template_id):
    """Delete a template (campaigns made from it keep their own copy)"""
    services.delete_template(g.team, team_object_or_404(Template, template_id))
