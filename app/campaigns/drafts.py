"""Campaign drafts: created (from a starting point, or as a resend), edited by form or by field, deleted."""
import re

from werkzeug.datastructures import MultiDict

from app import addresses
from app.brand.services import brand_for
from app.campaigns import states
from app.campaigns.ab_testing import AB_LABELS
from app.campaigns.ab_testing import ab_form_values
from app.campaigns.ab_testing import ab_test
from app.campaigns.ab_testing import ab_tests
from app.campaigns.ab_testing import parse_settings
from app.campaigns.ab_testing import variants_from_form
from app.campaigns.errors import CampaignError
from app.campaigns.errors import StateError
from app.content import sandbox
from app.content import sources
from app.content.blocks import store as block_store
from app.content.blocks.schema import BlockProblem
from app.content.blocks.schema import empty_document
from app.content import utm
from app.db import db
from app.email_templates import services as template_services
from app.models import Campaign
from app.models import CampaignState
from app.models import MailingList
from app.models import Segment
from app.models import Template
from app.models import Variant
from app.models import utcnow

# How a new email is written, in the words the new-campaign and new-template forms use.
KIND_CHOICES = (("blocks", "Drag-and-drop blocks"), ("html", "Write HTML"), ("markdown", "Write Markdown"))


def create_campaign(team, user, name, start_from="", kind="html"):
    """A new draft; `start_from` ("template:<id>", "starter:<key>" or "builtin:<key>", see starting_points)
    gives it a starting point: a layout with a {{ content }} slot becomes its layout, any other template
    becomes a copy of its content, blocks included (the campaign keeps its own copy, edited freely).
    Without one, `kind` says how the blank email is written ("blocks", "html" or "markdown")."""
    name = (name or "").strip()
    start = _starting_point(team, start_from)
    if not name and start is not None:
        name = start.name
    if not name:
        raise CampaignError("Give the campaign a name (only your team sees it).", field="name")
    values = dict(team=team, name=name[:200], created_by=user, utm=utm.defaults(name[:200]),
                  from_name=team.default_from_name, from_email=team.default_from_email)
    if start is not None and getattr(start, "id", None) and layout_slot(start):
        values["template"] = start.id
    elif start is not None and start.kind == "blocks":
        values.update(kind="blocks", blocks=start.blocks)
    elif start is not None:
        values.update(body=start.body, kind=start.kind)
    elif kind in ("blocks", "markdown"):
        values.update(kind=kind, blocks=empty_document() if kind == "blocks" else None)
    if values.get("kind") == "blocks":
        try:
            values["body"] = block_store.rendered_body(values["blocks"], brand_for(team))
        except BlockProblem as exc:
            raise CampaignError(exc.message, field="start_from") from None
    return Campaign.create(**values)


def _starting_point(team, value):
    """The team template or built-in layout named by a starting-point value, None for a blank
    email, or CampaignError for a value that names nothing of this team's."""
    kind, _sep, key = (value or "").partition(":")
    if not value:
        return None
    found = None
    if kind == "template" and key.isdigit():
        found = template_services.get_template(team, int(key))
    elif kind == "builtin":
        found = template_services.builtin(key)
    elif kind == "starter":
        found = template_services.block_starter(key)
    if found is None:
        raise CampaignError("That template no longer exists. Choose another one, or a blank email.",
                            field="start_from")
    return found


def starting_points(team):
    """What a new campaign can start from, in groups: (group label, [(value, label), ...])."""
    layouts, contents = [], []
    for template in template_services.team_templates(team):
        if layout_slot(template):
            layouts.append((f"template:{template.id}", f"{template.name} (layout: wraps the content you write)"))
        else:
            how = "blocks" if template.kind == "blocks" else "its content"
            contents.append((f"template:{template.id}", f"{template.name} ({how}, to edit)"))
    starters = [(f"starter:{s.key}", f"{s.name} (blocks, to edit)") for s in template_services.block_starters()]
    builtins = [(f"builtin:{b.key}", f"{b.name} (HTML, to edit)") for b in template_services.builtin_templates()]
    return [group for group in (("Your templates", contents), ("Your layouts", layouts),
                                ("Built-in block templates", starters), ("Built-in HTML templates", builtins))
            if group[1]]


def audience(campaign):
    """A copy of the campaign's audience: the caller may change it."""
    return dict(campaign.audience) if isinstance(campaign.audience, dict) else {}


def _ids(values, model, team):
    """The ids among `values` that are this team's rows of `model` (others are dropped)."""
    wanted = {int(v) for v in values if str(v).isdigit()}
    if not wanted:
        return []
    return [row.id for row in model.select(model.id).where((model.team == team) & (model.id << list(wanted)))]


def update_draft(campaign, form):
    """Apply the builder form to a draft, or raise CampaignError and store nothing.

    The form is applied to `campaign` in memory first and checked before anything
    is written, so on an error the caller can show the page again with the person's
    input (the in-memory campaign) and the message. Validation that only blocks
    publishing is in publish_problems()."""
    if campaign.state not in (CampaignState.DRAFT, CampaignState.FAILED):
        raise StateError(f"Only a draft can be edited; this campaign is {states.LABELS[campaign.state].lower()}. "
                         "Pause or unschedule it first.")
    apply_form(campaign, form)
    check_sender(campaign)
    check_subjects(campaign, form)
    if campaign.template_id is not None and not layout_slot(campaign.template):
        raise CampaignError(f"“{campaign.template.name}” has no {{{{ content }}}} slot, so it cannot wrap the body. "
                            "Choose a layout, or start a new campaign from this template instead.", field="template")
    try:
        campaign.utm = utm.settings_from_form(form, campaign.name)
    except utm.UtmError as exc:
        raise CampaignError(str(exc), errors=exc.errors) from None
    settings = parse_settings(form)
    variants = variants_from_form(campaign, settings, form)
    campaign.ab_test = settings
    campaign.updated_at = utcnow()
    with db.atomic():
        campaign.save()
        Variant.delete().where(Variant.campaign == campaign).execute()
        for values in variants:
            Variant.create(campaign=campaign, **values)
    return campaign


AUDIENCE_CHOICES = (("lists", MailingList, "list"), ("segments", Segment, "segment"),
                    ("exclude_lists", MailingList, "list"), ("exclude_segments", Segment, "segment"))


def form_of(campaign):
    """The builder form that saves `campaign` as it is stored (its A/B test and UTM settings included),
    for callers that change a few fields and leave the rest as they are (edit_draft)."""
    chosen = audience(campaign)
    settings = ab_test(campaign)
    values = {"name": campaign.name, "from_name": campaign.from_name, "from_email": campaign.from_email,
              "reply_to": campaign.reply_to, "subject": campaign.subject, "preheader": campaign.preheader,
              "kind": campaign.kind, "body": campaign.body, "template": str(campaign.template_id or ""),
              "track_opens": "1" if campaign.track_opens else "", "track_clicks": "1" if campaign.track_clicks else ""}
    utm_settings = campaign.utm if isinstance(campaign.utm, dict) else {}
    values["utm_enabled"] = "1" if utm_settings.get("enabled") else ""
    values.update({f"utm_{name}": str(utm_settings.get(name) or "") for name in utm.PARAMETERS})
    if settings:
        values.update(ab_enabled="1", ab_sample_percent=str(settings.get("sample_percent", 20)),
                      ab_wait_minutes=str(settings.get("wait_minutes", 240)),
                      ab_metric=settings.get("metric", "clicks"), ab_tests=ab_tests(settings))
        values.update(ab_form_values(campaign))
    form = MultiDict(values)
    for key, _model, _label in AUDIENCE_CHOICES:
        form.setlist(key, [str(item) for item in chosen.get(key) or []])
    return form


def edit_draft(campaign, changes):
    """Change only the builder fields in `changes` ({field: value}, a list for the audience fields) and
    save the draft with update_draft, or raise CampaignError and store nothing. Unlike the form, which
    offers only the team's own, an id that is not one of this team's lists, segments or templates is
    refused at its field instead of being dropped, and so is a body or kind for a block email (the form
    leaves them as they are: a block email changes in the block editor)."""
    if campaign.kind == "blocks" and {"body", "kind"} & set(changes):
        field = "body" if "body" in changes else "kind"
        raise CampaignError("A block email changes in the block editor: its body and kind are not set here.",
                            field=field)
    form = form_of(campaign)
    for key, value in changes.items():
        if isinstance(value, (list, tuple)):
            form.setlist(key, [str(item) for item in value])
        else:
            form[key] = value
    errors = {}
    for key, model, label in AUDIENCE_CHOICES:
        wanted = [int(item) for item in changes.get(key) or []]
        missing = sorted(set(wanted) - set(_ids(wanted, model, campaign.team)))
        if missing:
            errors[key] = f"No {label} of this team has the id {', '.join(map(str, missing))}."
    template = str(changes.get("template") or "")
    if template and not _ids([template], Template, campaign.team):
        errors["template"] = f"No template of this team has the id {template}."
    if errors:
        raise CampaignError(errors=errors)
    return update_draft(campaign, form)


def create_draft(team, user, name, start_from="", kind="html", changes=None):
    """create_campaign, then edit_draft with `changes`, in one transaction: a refused change leaves no
    campaign behind."""
    with db.atomic():
        campaign = create_campaign(team, user, name, start_from=start_from, kind=kind)
        if changes:
            campaign = edit_draft(campaign, changes)
    return campaign


def delete_campaign(campaign):
    """Delete a draft, cancelled or failed campaign with its blocks; StateError for any other (the
    reports of campaigns that went out are kept)."""
    if campaign.state not in (CampaignState.DRAFT, CampaignState.CANCELLED, CampaignState.FAILED):
        raise StateError(f"Only drafts, cancelled and failed campaigns can be deleted; this one is "
                         f"{states.LABELS[campaign.state].lower()}, and reports of sent ones are kept.")
    with db.atomic():
        block_store.forget(campaign)
        campaign.delete_instance()


def apply_form(campaign, form):
    """Copy the builder form onto `campaign` in memory (nothing is saved)."""
    team = campaign.team
    campaign.name = (form.get("name") or campaign.name).strip()[:200]
    campaign.from_name = form.get("from_name", "").strip()[:200]
    campaign.from_email = form.get("from_email", "").strip().lower()[:254]
    campaign.reply_to = form.get("reply_to", "").strip().lower()[:254]
    campaign.subject = form.get("subject", "").strip()[:998]
    campaign.preheader = form.get("preheader", "").strip()[:300]
    if campaign.kind != "blocks":  # a block email changes only in the block editor (app/content/blocks/store.py)
        campaign.kind = "markdown" if form.get("kind") == "markdown" else "html"
        campaign.body = form.get("body", campaign.body)
    template_ids = _ids([form.get("template", "")], Template, team)
    campaign.template = template_ids[0] if template_ids else None
    campaign.track_opens = bool(form.get("track_opens"))
    campaign.track_clicks = bool(form.get("track_clicks"))
    campaign.audience = {
        "lists": _ids(form.getlist("lists"), MailingList, team),
        "segments": _ids(form.getlist("segments"), Segment, team),
        "exclude_lists": _ids(form.getlist("exclude_lists"), MailingList, team),
        "exclude_segments": _ids(form.getlist("exclude_segments"), Segment, team),
    }
    return campaign


def single_address(value, field, label):
    """`value` as exactly one plain address (no name, no list, no line breaks), or CampaignError.

    These values become From and Reply-To headers and the mailto: of List-Unsubscribe:
    a comma, angle bracket or line break there would add recipients or headers."""
    try:
        return addresses.normalise_email(value, allow_test_domains=True)
    except addresses.InvalidEmail as exc:
        raise CampaignError(f"The {label} must be one email address, such as news@example.com ({exc})",
                            field=field) from None


def check_subjects(campaign, form):
    """Refuse a subject (the campaign's or a variant's) that cannot even be compiled, such as ~100 nested
    brackets: stored, it would make every page that previews the campaign fail."""
    fields = [("subject", campaign.subject)]
    fields += [(f"{label.lower()}_subject", form.get(f"{label.lower()}_subject", "").strip()[:998])
               for label in AB_LABELS[1:]]
    for field, subject in fields:
        try:
            sandbox.compile_template(subject, autoescape=False)
        except sandbox.RenderError as exc:
            raise CampaignError(f"This subject cannot be used: {exc}", field=field) from None


def check_sender(campaign):
    """Refuse sender fields that are not one address, or a From name that spans lines."""
    if campaign.from_email:
        campaign.from_email = single_address(campaign.from_email, "from_email", "From address")
    if campaign.reply_to:
        campaign.reply_to = single_address(campaign.reply_to, "reply_to", "Reply-to address")
    if re.search(r"[\x00-\x1f\x7f]", campaign.from_name):
        raise CampaignError("The From name must be one line of text.", field="from_name")


def layout_slot(template):
    """Whether a saved template can be a layout: an HTML template with a {{ content }} slot for the
    campaign's body (the rule sources.source_of applies when it wraps the body)."""
    return bool(template is not None and template.kind == "html" and sources.LAYOUT_SLOT.search(template.body or ""))


def resend(campaign, who, user):
    """A new draft copy for contacts who did not open it ("non_openers") or who joined the
    audience since it went out ("newcomers"). The copy's audience rule is stored in its
    audience JSON and applied by the ledger when it is frozen."""
    if campaign.state not in (CampaignState.COMPLETED, CampaignState.SENDING, CampaignState.PAUSED):
        raise CampaignError("Only a campaign that has been sent can be resent.")
    if who not in ("non_openers", "newcomers"):
        raise CampaignError("Choose non-openers or newcomers.")
    selected = audience(campaign)
    selected["resend_of"] = campaign.id
    selected["resend_to"] = who
    label = "non-openers" if who == "non_openers" else "new contacts"
    return Campaign.create(team=campaign.team, name=f"{campaign.name} (to {label})", created_by=user,
                           from_name=campaign.from_name, from_email=campaign.from_email,
                           reply_to=campaign.reply_to, subject=campaign.subject, preheader=campaign.preheader,
                           kind=campaign.kind, body=campaign.body, blocks=campaign.blocks,
                           template=campaign.template_id,
                           audience=selected, utm=dict(campaign.utm or {}),
                           track_opens=campaign.track_opens, track_clicks=campaign.track_clicks,
                           parent=campaign)
