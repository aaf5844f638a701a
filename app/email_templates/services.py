"""The template library: built-in layouts (files) and each team's own templates (rows),
previews, and test sends.

Built-in layouts are files in app/content/layouts/ (app.content.sources reads
them), one each, whose first line is a Jinja comment `{# name: … | description: … #}`.
They are read from disk (no database seeding), are the same for every team, and
are used by duplicating them into the team's library.
"""
import datetime
import functools
import re
from dataclasses import dataclass
from dataclasses import field

from flask import current_app
from markupsafe import escape as html_escape

from app import addresses
from app.brand.services import brand_for
from app.consent import ratelimit
from app.content import fields
from app.content import prepare
from app.content import sandbox
from app.content import sources
from app.content.blocks import catalogue
from app.content.blocks import store as block_store
from app.content.blocks.schema import BlockProblem
from app.content.blocks.schema import empty_document
from app.content.message import MessageFactory
from app.content.sandbox import RenderError
from app.db import db
from app.errors import Problem
from app.models import Campaign
from app.models import Contact
from app.models import Template
from app.models import TemplateDraft
from app.models import utcnow
from app.sending import teammail

MAX_TEST_ADDRESSES = 5
TEST_SENDS_PER_HOUR = 30  # messages per team (the app config TEST_SENDS_PER_HOUR overrides it)
MAX_NAME = 200
_HEADER = re.compile(r"^\{#\s*name:\s*(?P<name>[^|]+?)\s*\|\s*description:\s*(?P<description>.+?)\s*#\}")


class TemplateError(Problem):
    """Form errors, one message per field ("name", "kind", "body", "addresses", "contact" or "" for the form)."""


@dataclass(frozen=True)
class BuiltinTemplate:
    key: str
    name: str
    description: str
    body: str
    kind: str = "html"
    builtin: bool = True
    id: str = ""
    blocks: dict = field(default=None, compare=False)  # a block starter's document (kind "blocks")

    @property
    def ref(self):
        return f"{'starter' if self.kind == 'blocks' else 'builtin'}-{self.key}"


def _builtin_template(key, body):
    match = _HEADER.match(body)
    name = match.group("name") if match else key.replace("_", " ").title()
    description = match.group("description") if match else ""
    return BuiltinTemplate(key=key, name=name, description=description, body=body)


def builtin_templates():
    """Every built-in layout (app.content.sources reads them), named by its first line."""
    return [_builtin_template(key, body) for key, body in sources.builtin_layouts()]


def builtin(key):
    return next((item for item in builtin_templates() if item.key == key), None)


def block_starters():
    """The built-in block templates (app/content/blocks/starters/), each with its email rendered."""
    return list(_rendered_starters(catalogue.starters()))


@functools.lru_cache(maxsize=1)
def _rendered_starters(found):  # the catalogue hands out the same tuple until a file changes
    return tuple(BuiltinTemplate(key=item.key, name=item.name, description=item.description, kind="blocks",
                                 blocks=item.document, body=block_store.rendered_body(item.document))
                 for item in found)


def block_starter(key):
    return next((item for item in block_starters() if item.key == key), None)


def team_templates(team):
    return list(Template.select().where(Template.team == team).order_by(Template.updated_at.desc(), Template.id.desc()))


def template_page(team, before=None, size=50):
    """One page of the team's templates, newest first, walking by id: (templates, the id the next page
    starts before, or None on the last page)."""
    query = Template.select().where(Template.team == team)
    if before is not None:
        query = query.where(Template.id < before)
    found = list(query.order_by(Template.id.desc()).limit(size + 1))
    return found[:size], (found[size - 1].id if len(found) > size else None)


def get_template(team, template_id):
    """The team's template, or None (another team's id is simply not found)."""
    return Template.get_or_none((Template.id == template_id) & (Template.team == team))


def _clean(form, team, current=None):
    errors = {}
    name = " ".join((form.get("name") or "").split())
    kind = form.get("kind") or "html"
    body = form.get("body") or ""
    if not name:
        errors["name"] = "Give the template a name."
    elif len(name) > MAX_NAME:
        errors["name"] = f"Keep the name under {MAX_NAME} characters."
    elif (Template.select().where((Template.team == team) & (Template.name == name)
                                  & (Template.id != (current.id if current else 0))).exists()):
        errors["name"] = "Another template of this team already has this name."
    if kind not in sources.KINDS:
        errors["kind"] = "Choose HTML or Markdown."
    elif kind == "blocks" or (current is not None and current.kind == "blocks"):
        kind, body = "blocks", None  # blocks change in the block editor, each change saved on its own
    elif not body.strip():
        errors["body"] = "Write the body of the template (or start from a built-in layout)."
    else:
        try:
            body = prepare.clean_source(body, kind)
        except RenderError as error:
            errors["body"] = str(error)
    if errors:
        raise TemplateError(errors=errors)
    return name, kind, body


def create_template(team, form):
    """A new template from the form (body cleaned and checked), or TemplateError. A blocks template
    starts from the block starter named by form["starter"], or with no blocks."""
    name, kind, body = _clean(form, team)
    if kind != "blocks":
        with db.atomic():
            return Template.create(team=team, name=name, kind=kind, body=body)
    starter = block_starter(form.get("starter") or "")
    template = Template(team=team, name=name)
    try:
        block_store.save(template, starter.blocks if starter else empty_document(), brand_for(team))
    except BlockProblem as error:
        raise TemplateError(errors={"": error.message}) from None
    return template


def update_template(team, template, form):
    name, kind, body = _clean(form, team, template)
    values = {"name": name, "updated_at": utcnow()}
    if kind != "blocks":
        values.update(kind=kind, body=body)
    with db.atomic():
        Template.update(**values).where((Template.id == template.id) & (Template.team == team)).execute()
    return get_template(team, template.id)


def template_from_campaign(team, campaign, name=""):
    """A new team template with the campaign's email (its blocks, or its HTML or Markdown), under a free name."""
    return duplicate(team, campaign, name=" ".join((name or "").split())[:MAX_NAME] or campaign.name)


def duplicate(team, item, name=None):
    """A copy of a team template, a built-in one or a campaign's email in the team's library, named `name`
    (by default after the item), or that name with a number when the team already has it."""
    base = name or (f"{item.name} (copy)" if not getattr(item, "builtin", False) else item.name)
    name, number = base, 2
    with db.atomic():
        while Template.select().where((Template.team == team) & (Template.name == name)).exists():
            name = f"{base} {number}"
            number += 1
        copy = Template(team=team, name=name[:MAX_NAME], kind=item.kind, body=item.body)
        if item.kind == "blocks":
            try:
                block_store.copy_to(item, copy, brand_for(team))
            except BlockProblem as error:
                raise TemplateError(errors={"": error.message}) from None
        copy.save()
        return copy


def delete_template(team, template):
    """Delete; campaigns made from it keep their own copy of the content."""
    with db.atomic():
        block_store.forget(template)
        return Template.delete().where((Template.id == template.id) & (Template.team == team)).execute()


def find_contact(team, email_address):
    """The team's contact with this address, or None."""
    email_address = addresses.lookup_form(email_address)
    if not email_address:
        return None
    return Contact.get_or_none((Contact.team == team) & (Contact.email == email_address))


def contact_choices(team, limit=50):
    return list(Contact.select(Contact.id, Contact.email, Contact.name).where(Contact.team == team)
                .order_by(Contact.id.desc()).limit(limit))


class Draft:
    """An unsaved template (the editor's current text), previewed like a saved one."""

    def __init__(self, name, kind, body):
        self.name = name or "Untitled"
        self.kind = kind if kind in sources.KINDS else "html"
        self.body = body or ""
        self.builtin = False


DRAFT_DAYS = 1


def save_draft(team, user, slot, form):
    """Keep the editor's current text for the live preview; returns the TemplateDraft."""
    body = (form.get("body") or "")[:sandbox.MAX_SOURCE + 1]
    values = {"name": (form.get("name") or "")[:MAX_NAME], "kind": form.get("kind") or "html", "body": body,
              "updated_at": utcnow()}
    with db.atomic():
        TemplateDraft.delete().where(TemplateDraft.updated_at < utcnow() - datetime.timedelta(days=DRAFT_DAYS)).execute()
        (TemplateDraft.insert(team=team, user=user, slot=str(slot), **values)
         .on_conflict(conflict_target=[TemplateDraft.user, TemplateDraft.team, TemplateDraft.slot],
                      update=values).execute())
    return TemplateDraft.get((TemplateDraft.user == user) & (TemplateDraft.team == team)
                             & (TemplateDraft.slot == str(slot)))


def preview(team, item, contact=None, variant=None):
    """(subject, html, text) of a template or campaign (or one A/B variant of it) as `contact` (or a
    sample person) would get it."""
    if contact is None:
        contact = fields.sample_contact()
    return prepare.preview(item, contact, team=team, variant=variant)


def preview_summary(team, item, contact=None, variant=None):
    """What the preview pane shows besides the frame: subject, plain text (and a campaign's From name, which
    an A/B variant may change), or the error that stops rendering."""
    if item.kind not in sources.KINDS:
        return {"error": "Choose HTML or Markdown."}
    if not item.body.strip():
        return {"error": "Write something to see it here."}
    try:
        if isinstance(item, Draft):
            prepare.clean_source(item.body, item.kind)  # the same checks as saving, with line numbers
        subject, _html, text = preview(team, item, contact, variant)
    except RenderError as error:
        return {"error": str(error)}
    if isinstance(item, Campaign):
        return {"subject": subject, "text": text,
                "from_name": sources.source_of(item, variant).from_name or team.default_from_name}
    return {"subject": subject, "text": text}


def preview_html(team, item, contact=None, variant=None):
    """The HTML for the preview frame; a short explanation when the template cannot render."""
    try:
        return preview(team, item, contact, variant)[1]
    except RenderError as error:
        return f"<p style=\"font-family:sans-serif;color:#7f1d1d\">{html_escape(str(error))}</p>"


# --- Test sends --------------------------------------------------------------------------

def parse_addresses(text):
    """Up to MAX_TEST_ADDRESSES normalised addresses from a comma/space/line separated text, or TemplateError."""
    parts = [part for part in re.split(r"[\s,;]+", text or "") if part]
    if not parts:
        raise TemplateError(errors={"addresses": "Enter at least one email address."})
    if len(parts) > MAX_TEST_ADDRESSES:
        raise TemplateError(errors={"addresses": f"Send a test to at most {MAX_TEST_ADDRESSES} addresses at a time."})
    found, bad = [], []
    for part in parts:
        try:
            found.append(addresses.normalise_email(part))
        except addresses.InvalidEmail:
            bad.append(part)
    if bad:
        raise TemplateError(errors={"addresses": f"Not a valid email address: {', '.join(bad)}."})
    return list(dict.fromkeys(found))


def _test_campaign(item, team):
    """An unsaved Campaign carrying the item's content, for the message factory."""
    if isinstance(item, Campaign):
        return item
    return Campaign(team=team, name=item.name, subject=item.name, body=item.body, kind=item.kind,
                    from_name=team.default_from_name, from_email=team.default_from_email,
                    track_opens=False, track_clicks=False)


def test_sends_per_hour():
    """Test messages a team may send per hour (each address counts), across all its members."""
    return int(current_app.config.get("TEST_SENDS_PER_HOUR", TEST_SENDS_PER_HOUR))


def _team_mail_check(team, from_email):
    """(options, via) for the team's own account, or TemplateError saying what to set up first."""
    try:
        teammail.check_sender(team, from_email)
        return teammail.transport(team)
    except teammail.TeamMailError as error:
        raise TemplateError(errors={"": str(error)}) from None


def send_test(item, addresses, team, contact=None, variant=None):
    """Send `item` (a Campaign, Template or built-in) to each address now; one teammail.Delivery per address.

    Messages are built by the same MessageFactory as real sends, with nothing
    tracked and "[Test]" before the subject. Like all team mail they go only
    through the team's own active SMTP account, From an address on a verified
    sender domain (DKIM-signed), and never through the instance's outbound
    server (app.sending.teammail); at most test_sends_per_hour() messages per
    team and hour. Personalisation uses `contact` when given, else the team's
    contact with the recipient's address, else that address with no name. `variant`: one A/B
    variant of a campaign, sent as that variant's share of the audience gets it.
    """
    if isinstance(addresses, str):
        addresses = parse_addresses(addresses)
    campaign = _test_campaign(item, team)
    source = None if isinstance(item, Campaign) else sources.source_of(item)
    try:
        factory = MessageFactory(campaign, variant, test=True, source=source)
    except RenderError as error:
        raise TemplateError(errors={"": f"This template cannot be sent: {error}"}) from None
    options, via = _team_mail_check(team, factory.from_email)
    sign = teammail.signer(team, factory.from_email)
    messages = []
    for address in addresses:
        person = contact or find_contact(team, address) or fields.sample_contact(address, "")
        send = _TestSend(address)
        try:
            raw = factory.build(send, person)
        except RenderError as error:
            raise TemplateError(errors={"": f"This template cannot be sent: {error}"}) from None
        messages.append((address, sign(raw) if sign else raw))
    if not ratelimit.hit("test-send", team.id, test_sends_per_hour(), 3600, cost=len(messages)):
        left = max(test_sends_per_hour() - ratelimit.recent("test-send", team.id, 3600), 0)
        raise TemplateError(errors={"": f"This team has sent its {test_sends_per_hour()} test messages for this hour "
                                 f"({left} left): try again later, or send to fewer addresses."})
    results = teammail.deliver(options, factory.from_email, messages)
    for result in results:
        result.detail = f"{result.detail} (via {via})"
    return results


@dataclass
class _TestSend:
    email: str
    id: int = 0
