"""Campaigns: create and edit drafts, check and publish, schedule, A/B tests, resends.

Sending itself lives in app/sending (the ledger and the engine); state
changes go through app.campaigns.states.transition only. Services never
enqueue: publish() returns what the caller must start.
"""
import datetime
import re
import zoneinfo

from peewee import Case
from werkzeug.datastructures import MultiDict

from app import addresses
from app.brand.services import brand_for
from app.campaigns import states
from app.campaigns import stats
from app.content import prepare
from app.content import sandbox
from app.content import sources
from app.content.blocks import store as block_store
from app.content.blocks.schema import BlockProblem
from app.content.blocks.schema import empty_document
from app.content import utm
from app.db import db
from app.email_templates import services as template_services
from app.errors import Problem
from app.models import Campaign
from app.models import CampaignState
from app.models import MailingList
from app.models import Segment
from app.models import Template
from app.models import Variant
from app.models import utcnow
from app.senders import accounts
from app.senders import domains
from app.sending import ledger

AB_METRICS = {"clicks": "Unique clicks", "opens": "Unique opens (machine opens excluded)"}
# What an A/B test changes between its variants: one of these; the rest of each variant is the campaign's.
AB_TESTS = {"subject": "Subject line", "from_name": "From name", "content": "Content", "send_time": "Send time"}
AB_LABELS = ("A", "B", "C", "D")  # A is the campaign as written; B to D are typed in the A/B section
# The form field of each test's value, per variant: b_subject, c_from_name, d_body, b_send_at...
AB_FIELDS = {"subject": "subject", "from_name": "from_name", "content": "body", "send_time": "send_at"}
# A subject test may give each variant its own preheader too (b_preheader...; empty = the campaign's).
# What a subject test made from chosen subject lines starts with (opens: what a subject line changes).
SUBJECT_TEST_DEFAULTS = {"sample_percent": 20, "wait_minutes": 240, "metric": "opens", "tests": "subject"}


class CampaignError(Problem):
    pass


class StateError(CampaignError):
    """A refusal because of the state the campaign is in (the API answers it with 409 Conflict)."""
    status = 409


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


def ab_test(campaign):
    return dict(campaign.ab_test) if isinstance(campaign.ab_test, dict) else {}


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
    settings = _parse_ab(form)
    variants = _variants_from_form(campaign, settings, form)
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


# What each control button asks of the state machine.
CONTROL_TARGETS = {"pause": CampaignState.PAUSED, "resume": CampaignState.SENDING,
                   "cancel": CampaignState.CANCELLED, "unschedule": CampaignState.DRAFT}


def control(campaign, action, who=""):
    """Pause, resume, cancel or unschedule (`action`); returns the campaign in its new state, or
    TransitionError saying the state it is in. `who` is written in the reason of a pause or cancel.
    The caller starts sending again after a resume (services never enqueue)."""
    if action == "resume" and campaign.state != CampaignState.PAUSED:
        raise states.TransitionError(f"Only a paused campaign can be resumed; this one is "
                                     f"{states.LABELS[campaign.state].lower()}.")
    reason = f"{action.capitalize()}d by {who}" if who and action in ("pause", "cancel") else ""
    return states.transition(campaign, CONTROL_TARGETS[action], reason=reason)


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


def _parse_ab(form):
    if not form.get("ab_enabled"):
        return {}
    try:
        sample = int(form.get("ab_sample_percent", "20"))
        wait = int(form.get("ab_wait_minutes", "240"))
    except ValueError:
        raise CampaignError("The A/B sample and waiting time must be whole numbers.", field="ab_sample_percent")
    if not 2 <= sample <= 50:
        raise CampaignError("Test on 2% to 50% of the audience; the winner goes to the rest.",
                            field="ab_sample_percent")
    if not 5 <= wait <= 7 * 24 * 60:
        raise CampaignError("Wait between 5 minutes and 7 days before picking the winner.", field="ab_wait_minutes")
    metric = form.get("ab_metric", "clicks")
    if metric not in AB_METRICS:
        raise CampaignError("Choose clicks or opens as the winning metric.", field="ab_metric")
    tests = form.get("ab_tests") or ("content" if form.get("b_body", "").strip() else "subject")
    if tests not in AB_TESTS:
        raise CampaignError("Choose what the test changes: the subject, the From name, the content or the send time.",
                            field="ab_tests")
    return {"sample_percent": sample, "wait_minutes": wait, "metric": metric, "tests": tests}


def ab_tests(settings):
    """What a test's variants differ in; tests stored before there was a choice changed subject or content."""
    return settings.get("tests") or "subject"


def _variants_from_form(campaign, settings, form):
    """The Variant values of an A/B test (A is the campaign as written, B to D as typed), or [] without
    a test; CampaignError on the field of a variant that cannot be used. Each variant holds only the
    tested value: everything else of it is the campaign's."""
    if not settings:
        return []
    tests = ab_tests(settings)
    field = AB_FIELDS[tests]
    a_values = {"subject": {"subject": campaign.subject}, "from_name": {"from_name": campaign.from_name},
                "content": {}, "send_time": {}}[tests]
    variants = [dict(label="A", **a_values)]
    missing = None
    for label in AB_LABELS[1:]:
        name = f"{label.lower()}_{field}"
        value = (form.get(name) or "").strip()
        if not value:
            missing = missing or label
            continue
        if missing:
            raise CampaignError(f"Fill in variant {missing} before variant {label}.", field=f"{missing.lower()}_{field}")
        variant = dict(label=label, **_variant_value(campaign, tests, name, value))
        if tests == "subject":
            variant["preheader"] = (form.get(f"{label.lower()}_preheader") or "").strip()[:300]
        variants.append(variant)
    if len(variants) < 2:
        what = {"subject": "a different subject", "from_name": "a different From name",
                "content": "a different content", "send_time": "a different send time"}[tests]
        raise CampaignError(f"Give variant B {what} (variant A is the campaign as written above).",
                            field=f"b_{field}")
    return variants


def ab_form_values(campaign):
    """The A/B section's variant fields as stored (b_subject, c_send_at in the team's time, ...)."""
    values = {}
    tests = ab_tests(ab_test(campaign))
    for variant in Variant.select().where((Variant.campaign == campaign.id) & (Variant.label != "A")):
        prefix = variant.label.lower()
        values[f"{prefix}_subject"] = variant.subject if tests == "subject" else ""
        values[f"{prefix}_preheader"] = variant.preheader if tests == "subject" else ""
        values[f"{prefix}_from_name"] = variant.from_name
        values[f"{prefix}_body"] = variant.body
        local = local_time(campaign.team, variant.send_at)
        values[f"{prefix}_send_at"] = local.strftime("%Y-%m-%dT%H:%M") if local else ""
    return values


def variants_of(campaign):
    return list(Variant.select().where(Variant.campaign == campaign.id).order_by(Variant.label))


def variant_of(campaign, label=None, variant_id=None):
    """The campaign's A/B variant with this label or id, or None."""
    condition = Variant.campaign == campaign.id
    if label is not None:
        condition &= Variant.label == str(label).strip().upper()[:1]
    if variant_id is not None:
        condition &= Variant.id == variant_id
    return Variant.get_or_none(condition)


def _variant_value(campaign, tests, name, value):
    """{column: value} of one variant's tested value, checked as the campaign's own would be."""
    if tests == "subject":
        return {"subject": value[:998]}  # compiled by check_subjects
    if tests == "from_name":
        if re.search(r"[\x00-\x1f\x7f]", value):
            raise CampaignError("The From name must be one line of text.", field=name)
        return {"from_name": value[:200]}
    if tests == "content":
        kind = "markdown" if campaign.kind == "markdown" else "html"
        try:
            return {"body": prepare.clean_source(value, kind)}
        except sandbox.RenderError as exc:
            raise CampaignError(f"This content cannot be used: {exc}", field=name) from None
    try:
        return {"send_at": parse_schedule(campaign.team, value)}
    except CampaignError as exc:
        raise CampaignError(str(exc), field=name) from None


def check_subject_editable(campaign):
    """CampaignError unless the campaign's subject may still change (a draft, or a failed one)."""
    if campaign.state in (CampaignState.DRAFT, CampaignState.FAILED):
        return
    if campaign.state in (CampaignState.SCHEDULED, CampaignState.PAUSED):
        raise CampaignError("Only a draft can be edited. Pause or unschedule it first.")
    raise CampaignError(f"This campaign is {states.LABELS[campaign.state].lower()}: its subject can no longer "
                        "change. Duplicate it to use these subject lines in a new draft.")


def _checked_subject(subject, preheader, field="subject"):
    """(subject, preheader) on one line each and within their lengths, or CampaignError."""
    subject = " ".join(str(subject or "").split())[:998]
    preheader = " ".join(str(preheader or "").split())[:300]
    if not subject:
        raise CampaignError("A subject line cannot be empty.", field=field)
    try:
        sandbox.compile_template(subject, autoescape=False)
        sandbox.compile_template(preheader, autoescape=False)
    except sandbox.RenderError as exc:
        raise CampaignError(f"This subject cannot be used: {exc}", field=field) from None
    return subject, preheader


def set_subject(campaign, subject, preheader):
    """Save a new subject and preheader on a draft, the rest of it as stored; returns the previous
    {"subject", "preheader"} (for an undo)."""
    check_subject_editable(campaign)
    subject, preheader = _checked_subject(subject, preheader)
    previous = {"subject": campaign.subject, "preheader": campaign.preheader}
    campaign.subject, campaign.preheader, campaign.updated_at = subject, preheader, utcnow()
    campaign.save(only=[Campaign.subject, Campaign.preheader, Campaign.updated_at])
    return previous


def subject_ab_test(campaign, pairs):
    """Make `pairs` ([(subject, preheader)], two to four) the variants of the draft's subject A/B test:
    the campaign (variant A) takes the first, variants B.. the rest. A subject test already set up keeps
    its sample, wait and metric; one that tests something else is refused, not replaced."""
    check_subject_editable(campaign)
    if not 2 <= len(pairs) <= len(AB_LABELS):
        raise CampaignError(f"Choose two to {len(AB_LABELS)} subject lines to test against each other.")
    pairs = [_checked_subject(subject, preheader) for subject, preheader in pairs]
    current = ab_test(campaign)
    if current and ab_tests(current) != "subject" and variants_of(campaign):
        raise CampaignError(f"This campaign's A/B test changes the {AB_TESTS[ab_tests(current)].lower()}. "
                            "Switch that test off (or to Subject line) and save, then make the subject test.")
    settings = dict(SUBJECT_TEST_DEFAULTS)
    if current and ab_tests(current) == "subject":
        settings.update({key: current[key] for key in ("sample_percent", "wait_minutes", "metric") if key in current})
    campaign.subject, campaign.preheader = pairs[0]
    campaign.ab_test, campaign.updated_at = settings, utcnow()
    with db.atomic():
        campaign.save(only=[Campaign.subject, Campaign.preheader, Campaign.ab_test, Campaign.updated_at])
        Variant.delete().where(Variant.campaign == campaign).execute()
        for label, (subject, preheader) in zip(AB_LABELS, pairs):
            Variant.create(campaign=campaign, label=label, subject=subject, preheader=preheader)
    return variants_of(campaign)


def parse_schedule(team, local_value):
    """'2026-12-01T09:30' in the team's time zone → naive UTC datetime, or CampaignError."""
    try:
        local = datetime.datetime.fromisoformat(local_value)
    except (TypeError, ValueError):
        raise CampaignError("Enter a date and time, such as 2026-12-01 09:30.", field="scheduled_at")
    zone = zoneinfo.ZoneInfo(team.time_zone or "UTC")
    return check_schedule(team, local.replace(tzinfo=zone).astimezone(datetime.timezone.utc).replace(tzinfo=None))


def check_schedule(team, moment):
    """`moment` (naive UTC) if it is still to come, else CampaignError at scheduled_at."""
    if moment <= utcnow():
        raise CampaignError(f"That time has passed in {team.time_zone}. Pick a later one, or send now.",
                            field="scheduled_at")
    return moment


def local_time(team, utc_value):
    if utc_value is None:
        return None
    zone = zoneinfo.ZoneInfo(team.time_zone or "UTC")
    return utc_value.replace(tzinfo=datetime.timezone.utc).astimezone(zone)


# --- A/B: split at publish, pick the winner later ------------------------------------

def split_for_ab_test(campaign):
    """Give `sample_percent` of the frozen sends to the variants in turn (by id), and hold the rest
    until the winner is known; in a send-time test each variant's share waits for its time. Runs in
    SQL over the ledger."""
    settings = ab_test(campaign)
    variants = list(Variant.select().where(Variant.campaign == campaign).order_by(Variant.label))
    if not settings or len(variants) < 2:
        return
    with db.atomic():
        cutoff = stats.sample_cutoff(campaign) or 0  # the rule the A/B table reads back
        ledger.hold_sample(campaign.id, variants, cutoff)
        for variant in variants:
            if variant.send_at is not None:
                ledger.wait_for_send_time(campaign.id, variant, variant.send_at)


def ab_results(campaign):
    """Per variant, on its share of the test sample only: sent, unique opens (human) and clicks, and
    their rates per delivered message (app.campaigns.stats, as every page shows them)."""
    table = stats.ab_table(campaign)
    return table["tests"] if table else []


def ab_decision_due(campaign, now=None):
    decision_at = None if campaign.ab_decided_at else stats.ab_decision_at(campaign)
    return decision_at is not None and (now or utcnow()) >= decision_at


def decide_ab_winner(campaign):
    """Mark the winner by the chosen metric (ties go to A) and release the held sends to it.
    Returns the winning Variant, or None when there was nothing to decide."""
    settings = ab_test(campaign)
    results = ab_results(campaign)
    if not settings or len(results) < 2:
        return None
    key = "click_rate" if settings["metric"] == "clicks" else "open_rate"
    # Ties go to the earliest label (A first: the campaign as written).
    winner = max(results, key=lambda r: (r[key], -ord(r["variant"].label[:1] or "Z")))["variant"]
    return winner if _declare_winner(campaign, winner) else None


def pick_winner(campaign, variant_id):
    """A person picks the winner: the held rest of the audience is queued with it at once, whether or not
    the automatic pick is still waiting. Returns the Variant; CampaignError when the test is decided
    already (a second click, or the automatic pick came first) or the campaign is not sending."""
    variant = Variant.get_or_none((Variant.campaign == campaign.id) & (Variant.id == variant_id))
    if not ab_test(campaign) or variant is None:
        raise CampaignError("Choose one of this campaign's A/B variants.")
    if campaign.ab_decided_at is None and campaign.state not in (CampaignState.SENDING, CampaignState.PAUSED):
        raise CampaignError(f"A {states.LABELS[campaign.state].lower()} campaign's test cannot get a winner.")
    if campaign.ab_decided_at is not None or not _declare_winner(campaign, variant):
        current = Variant.get_or_none((Variant.campaign == campaign.id) & (Variant.is_winner == True))  # noqa: E712
        raise CampaignError(f"The winner is already picked: variant {current.label if current else '?'}.")
    return variant


def _declare_winner(campaign, winner):
    """Mark `winner` and queue the held sends with it, once: the conditional UPDATE lets only the first
    decision (a worker's or a click's) through. False when the test was decided already."""
    with db.atomic():
        decided = (Campaign.update(ab_decided_at=utcnow())
                   .where((Campaign.id == campaign.id) & Campaign.ab_decided_at.is_null()).execute())
        if not decided:
            return False
        Variant.update(is_winner=True).where(Variant.id == winner.id).execute()
        ledger.release_to_winner(campaign.id, winner)
    return True


# --- Publishing ----------------------------------------------------------------

def publish_problems(campaign):
    """Everything that stops this campaign from going out, in words. Empty when ready."""
    problems = []
    team = campaign.team
    if not campaign.subject:
        problems.append("Write a subject line.")
    if not campaign.body.strip() or (campaign.kind == "blocks" and not (campaign.blocks or {}).get("blocks")):
        problems.append("Write the content of the email.")
    try:  # stored before save-time checks existed, or changed behind the form's back
        check_sender(Campaign(from_email=campaign.from_email, reply_to=campaign.reply_to,
                              from_name=campaign.from_name))
    except CampaignError as exc:
        problems.append(str(exc))
    if campaign.template_id is not None and not layout_slot(campaign.template):
        problems.append(f"The layout “{campaign.template.name}” has no {{{{ content }}}} slot: choose another "
                        "layout, or none.")
    if not campaign.from_email or "@" not in campaign.from_email:
        problems.append("Enter the From address.")
    elif not domains.is_verified_sender(team.id, campaign.from_email):
        domain = campaign.from_email.rpartition("@")[2]
        problems.append(f"The sender domain {domain} is not verified. Add and verify it under Sender domains.")
    if not team.postal_address.strip():
        problems.append("Add your postal address in Team settings: the law (CAN-SPAM) requires it in every campaign.")
    selected = audience(campaign)
    if not selected.get("lists") and not selected.get("segments"):
        problems.append("Choose at least one list or segment to send to.")
    active = accounts.active_accounts(team.id)
    if not active:
        problems.append("Add an SMTP account (or resume a paused one) to send through.")
    elif len(accounts.failed_last_test(active)) == len(active):
        # Known not to work: publishing would only show "Sending 0 %" until it pauses.
        names = ", ".join(f"“{a.name}”" for a in active)
        problems.append(f"The SMTP account {names} failed its last connection test and has not connected since. "
                        "Fix it under Sending › SMTP accounts and test it again.")
    # The campaign's own content is rendered by the engine too (it is what the rest of an A/B audience
    # falls back on), so it is checked even when variants exist.
    variants = [None] + list(Variant.select().where(Variant.campaign == campaign).order_by(Variant.label))
    for variant in variants:
        try:
            # Rendering for a sample contact proves the template compiles and stays within its limits.
            prepare.preview(campaign, None, variant=variant)
        except sandbox.RenderError as exc:
            problems.append(f"{'Variant ' + variant.label if variant else 'Content'}: {exc}")
    for variant in variants[1:]:
        if variant.send_at is not None and variant.send_at <= utcnow():
            when = local_time(team, variant.send_at)
            problems.append(f"Variant {variant.label}'s send time ({when:%Y-%m-%d %H:%M}, {team.time_zone}) has "
                            "passed: choose a later one in the A/B test.")
    if ab_test(campaign) and Variant.select().where(Variant.campaign == campaign).count() < 2:
        problems.append("The A/B test needs a variant B. Give it what it tests: a different subject, From name, "
                        "content or send time.")
    return problems


def publish_warnings(campaign):
    """What may go wrong but does not stop publishing: SMTP accounts never tested nor used."""
    active = accounts.active_accounts(campaign.team_id)
    untested = accounts.never_connected(active)
    if active and len(untested) == len(active):
        names = ", ".join(f"“{a.name}”" for a in untested)
        return [f"The SMTP account {names} has never passed a connection test. If it cannot connect, the "
                "campaign page says so and the messages wait; test it under Sending › SMTP accounts."]
    return []


def publish(campaign, when=None):
    """Freeze the audience and content, then schedule or start sending.

    Returns the campaign in its new state; the caller enqueues the sending task
    when the state is "sending" (services never enqueue). Only a draft, or a scheduled campaign sent
    now, is published: any other is refused first, before its content or audience is touched (a
    completed campaign may go back to sending, but only to send its failed messages again: requeue_failed)."""
    states.check_transition(campaign.state, CampaignState.SENDING if when is None else CampaignState.SCHEDULED,
                            only_from=(CampaignState.DRAFT, CampaignState.SCHEDULED))
    if campaign.kind == "blocks":
        try:  # the email goes out in the team's brand as it is now
            block_store.refresh(campaign, brand_for(campaign.team))
        except BlockProblem as exc:
            raise CampaignError(exc.message) from None
    problems = publish_problems(campaign)
    if problems:
        raise CampaignError(" ".join(problems))
    if when is not None:
        early = [v.label for v in variants_of(campaign) if v.send_at is not None and v.send_at < when]
        if early:
            raise CampaignError(f"Variant {', '.join(early)} would go out before the scheduled time (variant A goes "
                                "at that time): schedule the campaign earlier, or give the variants later times.",
                                field="scheduled_at")
        campaign.scheduled_at = when
        campaign.save()
        return states.transition(campaign, CampaignState.SCHEDULED)
    return start(campaign)


def start(campaign):
    """Freeze the audience (idempotent: the ledger is unique per contact) and begin sending."""
    total = ledger.freeze_audience(campaign)
    if total == 0:
        raise CampaignError("Nobody is left to send to: everyone in this audience is unsubscribed, bounced, "
                            "complained or suppressed.")
    campaign = Campaign.get_by_id(campaign.id)
    split_for_ab_test(campaign)
    return states.transition(campaign, CampaignState.SENDING)


def unschedule(campaign):
    return states.transition(campaign, CampaignState.DRAFT)


def due_scheduled(now=None):
    """Scheduled campaigns whose time has come (the periodic task starts them)."""
    now = now or utcnow()
    return list(Campaign.select().where((Campaign.state == CampaignState.SCHEDULED) & (Campaign.scheduled_at <= now)))


# --- Resend ------------------------------------------------------------------------

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


# --- Progress ----------------------------------------------------------------------

def progress(campaign):
    """The campaign page's numbers: app.campaigns.stats.progress (the one place counts are made)."""
    return stats.progress(campaign)


def requeue_failed(campaign):
    """Queue the failed sends again (and resume a finished campaign); returns (count, campaign)."""
    with db.atomic():
        # A fresh start: the retries with backoff apply again to each of them.
        count = ledger.retry_failed(campaign.id)
        remaining = Campaign.failed - count
        Campaign.update(failed=Case(None, [(remaining < 0, 0)], remaining)).where(Campaign.id == campaign.id).execute()
    if not count:
        raise CampaignError("There are no failed messages to send again.")
    if campaign.state in (CampaignState.COMPLETED, CampaignState.PAUSED):
        campaign = states.transition(campaign, CampaignState.SENDING, reason="Failed messages queued again")
    return count, campaign
