"""Campaigns: the list, the builder (HTMX), publish/schedule, live progress, pause/resume/cancel."""

from flask import Blueprint
from flask import abort
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user

from app.campaigns import ab_testing
from app.campaigns import calendar
from app.campaigns import drafts
from app.campaigns import duplicate as duplicates
from app.campaigns import listing
from app.campaigns import publishing
from app.campaigns import schedule
from app.campaigns import spam_score
from app.campaigns import states
from app.campaigns import stats
from app.campaigns.errors import CampaignError
from app.campaigns.listing import team_campaign_or_404
from app.campaigns.states import TransitionError
from app.contacts import lists as mailing_lists
from app.contacts import query as contact_query
from app.content import utm
from app.email_templates import services as template_services
from app.htmx import hx_redirect
from app.htmx import is_htmx
from app.localtime import to_local
from app.models import Campaign
from app.models import CampaignState
from app.models import utcnow
from app.security import untrusted_html_response
from app.sending import ledger
from app.teams.context import require
from app.teams.permissions import ROLE_PERMISSIONS
from app.wording import plural
from tasks import sending as sending_tasks

bp = Blueprint("campaigns", __name__, url_prefix="/campaigns")
# {{ n|plural("person") }} on every page ("1 person", "2 people"); registered app-wide from here.
bp.add_app_template_filter(plural, "plural")


def _index(status=200, **extra):
    wanted = listing.parse_filter(request.args)
    page = listing.campaign_page(g.team, wanted)
    context = dict(page=page, wanted=wanted, labels=states.LABELS, state_choices=listing.state_choices())
    if is_htmx() and request.method == "GET":
        return render_template("campaigns/_results.html", **context), status
    return render_template("campaigns/index.html", starts=drafts.starting_points(g.team), kinds=drafts.KIND_CHOICES,
                           **context,
                           **extra), status


@bp.route("/")
@require("view")
def index():
    return _index(form=request.args)


@bp.route("/calendar")
@require("view")
def calendar_page():
    """A month of scheduled and sent campaigns (?month=YYYY-MM), in the team's time zone."""
    now = utcnow()
    today = to_local(now).date()
    error, status = None, 200
    try:
        first = calendar.parse_month(request.args.get("month"), today)
    except calendar.CalendarError as exc:
        first, error, status = today.replace(day=1), str(exc), 400
    return render_template("campaigns/calendar.html", month=calendar.month_view(g.team, first, now), error=error,
                           weekdays=calendar.WEEKDAYS), status


@bp.route("/<int:campaign_id>/duplicate", methods=["POST"])
@require("edit_content")
def duplicate(campaign_id):
    campaign = team_campaign_or_404(campaign_id)
    try:
        copy = duplicates.duplicate_campaign(g.team, campaign, current_user.id)
    except duplicates.DuplicateError as exc:
        flash(str(exc), "error")
        return redirect(url_for("campaigns.index"))
    flash(f"“{copy.name}” is a new draft with the content, sender and audience of “{campaign.name}”.", "success")
    return redirect(url_for("campaigns.edit", campaign_id=copy.id))


@bp.route("/new", methods=["POST"])
@require("edit_content")
def new_campaign():
    try:
        campaign = drafts.create_campaign(g.team, current_user.id, request.form.get("name", ""),
                                          start_from=request.form.get("start_from", ""),
                                          kind=request.form.get("kind", "html"))
    except CampaignError as exc:
        return _index(422, error=str(exc), errors=exc.errors, form=request.form)
    return redirect(url_for("campaigns.edit", campaign_id=campaign.id))


@bp.route("/<int:campaign_id>/save-as-template", methods=["POST"])
@require("edit_content")
def save_as_template(campaign_id):
    """A new team template with this campaign's email (its blocks, or its HTML or Markdown)."""
    campaign = team_campaign_or_404(campaign_id)
    try:
        template = template_services.template_from_campaign(g.team, campaign, request.form.get("name", ""))
    except template_services.TemplateError as exc:
        flash(str(exc), "error")
        return redirect(url_for("campaigns.edit", campaign_id=campaign.id))
    flash(f"Saved as the template “{template.name}”: start new campaigns from it under Templates.", "success")
    return redirect(url_for("email_templates.edit", template_id=template.id))


def _builder_context(campaign, form=None, **extra):
    """Everything campaigns/edit.html needs. With `form` (a refused save), the A/B fields and
    variant B show what the person typed, and `campaign` is expected to carry the rest in memory."""
    if form is not None:
        ab = {"sample_percent": form.get("ab_sample_percent", "20"), "wait_minutes": form.get("ab_wait_minutes", "240"),
              "metric": form.get("ab_metric", "clicks"), "tests": form.get("ab_tests", "subject")
              } if form.get("ab_enabled") else {}
        variant_values = {f"{label.lower()}_{name}": form.get(f"{label.lower()}_{name}", "")
                          for label in ab_testing.AB_LABELS[1:]
                          for name in (*ab_testing.AB_FIELDS.values(), "preheader")}
        utm_settings = {"enabled": bool(form.get("utm_enabled")),
                        **{name: form.get(f"utm_{name}", "") for name in utm.PARAMETERS}}
        extra.setdefault("problems", ["Save the draft (fix what is marked above) before sending it."])
    else:
        ab = ab_testing.ab_test(campaign)
        variant_values = ab_testing.ab_form_values(campaign)
        utm_settings = campaign.utm or {}
        extra.setdefault("problems", publishing.publish_problems(campaign))
    try:
        count, count_error = ledger.count_audience(campaign), None
    except ledger.LedgerError as exc:
        count, count_error = None, str(exc)
    all_templates = list(template_services.team_templates(g.team))
    return dict(campaign=campaign, audience=drafts.audience(campaign), ab=ab, variant_values=variant_values,
                ab_tests=ab_testing.AB_TESTS, ab_labels=ab_testing.AB_LABELS, utm_settings=utm_settings,
                utm_example=utm.example_link(utm_settings) if utm_settings.get("enabled") else "",
                variants=ab_testing.variants_of(campaign) if form is None else [],
                lists=mailing_lists.lists_of(g.team), segments=contact_query.segments_of(g.team),
                labels=states.LABELS, count=count, count_error=count_error,
                layouts=[t for t in all_templates if drafts.layout_slot(t)],
                scheduled_local=schedule.local_time(g.team, campaign.scheduled_at), **extra)


def _builder(campaign, status=200, **extra):
    return render_template("campaigns/edit.html", **_builder_context(campaign, **extra)), status


@bp.route("/<int:campaign_id>", methods=["GET", "POST"])
@require("view")
def edit(campaign_id):
    campaign = team_campaign_or_404(campaign_id)
    if campaign.state not in (CampaignState.DRAFT, CampaignState.FAILED):
        return redirect(url_for("campaigns.progress", campaign_id=campaign.id))
    if request.method == "POST":
        if not g.membership or "edit_content" not in _permissions():
            abort(403, description="Your role does not allow editing campaigns.")
        try:
            drafts.update_draft(campaign, request.form)
        except CampaignError as exc:
            # The page again, with what was typed (held in memory by update_draft) and the message.
            return _builder(campaign, 422, form=request.form, error=str(exc), errors=exc.errors)
        flash("Draft saved.", "success")
        return redirect(url_for("campaigns.edit", campaign_id=campaign.id))
    return _builder(campaign)


def _permissions():
    return ROLE_PERMISSIONS[g.membership.role]


@bp.route("/<int:campaign_id>/count", methods=["POST"])
@require("view")
def count(campaign_id):
    """The live recipient count for the audience currently chosen in the builder (not saved)."""
    campaign = team_campaign_or_404(campaign_id)
    draft = Campaign(id=campaign.id, team=g.team, audience={
        key: request.form.getlist(key) for key in ("lists", "segments", "exclude_lists", "exclude_segments")})
    try:
        total = ledger.count_audience(draft)
        error = None
    except ledger.LedgerError as exc:
        total, error = None, str(exc)
    return render_template("campaigns/_count.html", count=total, count_error=error)


@bp.route("/<int:campaign_id>/utm-example", methods=["POST"])
@require("view")
def utm_example(campaign_id):
    """The tagged example link for the UTM settings currently typed in the builder (not saved)."""
    campaign = team_campaign_or_404(campaign_id)
    try:
        settings, error = utm.settings_from_form(request.form, campaign.name), None
    except utm.UtmError as exc:
        settings, error = {}, str(exc)
    return render_template("campaigns/_utm_example.html", utm_error=error,
                           utm_example=utm.example_link(settings) if settings.get("enabled") else "")


@bp.route("/<int:campaign_id>/publish", methods=["POST"])
@require("send")
def publish(campaign_id):
    campaign = team_campaign_or_404(campaign_id)
    try:
        when = None
        if request.form.get("when") == "later":
            when = schedule.parse_schedule(g.team, request.form.get("scheduled_at", ""))
        published = publishing.publish(campaign, when)
    except (CampaignError, TransitionError, ledger.LedgerError) as exc:
        if campaign.state not in (CampaignState.DRAFT, CampaignState.FAILED):  # e.g. published meanwhile in another tab
            flash(f"Not published: {exc}", "error")
            return redirect(url_for("campaigns.progress", campaign_id=campaign.id))
        field = getattr(exc, "field", None)
        return _builder(campaign, 422, error=f"Not published: {exc}" if field is None else str(exc),
                        errors={field: str(exc)} if field else {}, when=request.form.get("when", "now"),
                        scheduled_value=request.form.get("scheduled_at", ""))
    campaign = published
    if campaign.state == CampaignState.SENDING:
        sending_tasks.send_campaign(campaign.id)
        flash("Sending has started.", "success")
    else:
        local = schedule.local_time(g.team, campaign.scheduled_at)
        flash(f"Scheduled for {local:%Y-%m-%d %H:%M} ({g.team.time_zone}).", "success")
    for warning in publishing.publish_warnings(campaign):
        flash(warning, "warning")
    return redirect(url_for("campaigns.progress", campaign_id=campaign.id))


@bp.route("/<int:campaign_id>/<any(pause, resume, cancel, unschedule):action>", methods=["POST"])
@require("send")
def control(campaign_id, action):
    """Pause, resume, cancel or unschedule; the engine notices within a second."""
    campaign = team_campaign_or_404(campaign_id)
    try:
        campaign = publishing.control(campaign, action, who=current_user.email)
    except TransitionError as exc:
        flash(str(exc), "error")
    else:
        if action == "resume":
            sending_tasks.send_campaign(campaign.id)
        flash({"pause": "Paused. Messages already handed to the SMTP server still go out.",
               "resume": "Sending again.", "cancel": "Cancelled. Nobody else will receive it.",
               "unschedule": "Back to draft."}[action], "info")
    target_url = url_for("campaigns.edit" if action == "unschedule" else "campaigns.progress", campaign_id=campaign.id)
    return hx_redirect(target_url) if is_htmx() else redirect(target_url)


@bp.route("/<int:campaign_id>/progress")
@require("view")
def progress(campaign_id):
    campaign = team_campaign_or_404(campaign_id)
    if campaign.state == CampaignState.DRAFT:
        return redirect(url_for("campaigns.edit", campaign_id=campaign.id))
    context = dict(campaign=campaign, stats=stats.progress(campaign), labels=states.LABELS,
                   scheduled_local=schedule.local_time(g.team, campaign.scheduled_at), ab=stats.ab_table(campaign))
    template = "campaigns/_progress.html" if is_htmx() else "campaigns/progress.html"
    return render_template(template, **context)


@bp.route("/<int:campaign_id>/failed")
@require("view")
def failed(campaign_id):
    campaign = team_campaign_or_404(campaign_id)
    return render_template("campaigns/failed.html", campaign=campaign,
                           sends=ledger.failed_sends(campaign, after_id=request.args.get("after", 0, type=int)))


@bp.route("/<int:campaign_id>/failed/requeue", methods=["POST"])
@require("send")
def requeue(campaign_id):
    campaign = team_campaign_or_404(campaign_id)
    try:
        count, campaign = publishing.requeue_failed(campaign)
    except (CampaignError, TransitionError) as exc:
        flash(str(exc), "error")
        return redirect(url_for("campaigns.failed", campaign_id=campaign.id))
    sending_tasks.send_campaign(campaign.id)
    flash(f"{plural(count, 'failed message')} {'is' if count == 1 else 'are'} queued again.", "success")
    return redirect(url_for("campaigns.progress", campaign_id=campaign.id))


@bp.route("/<int:campaign_id>/ab/winner", methods=["POST"])
@require("send")
def pick_winner(campaign_id):
    """"Pick this winner" on the report: the rest of the audience gets that variant now."""
    campaign = team_campaign_or_404(campaign_id)
    variant = ab_testing.variant_of(campaign, variant_id=request.form.get("variant", type=int) or 0) or abort(404)
    try:
        ab_testing.pick_winner(campaign, variant.id)
    except CampaignError as exc:
        flash(str(exc), "error")
    else:
        if campaign.state == CampaignState.SENDING:
            sending_tasks.send_campaign(campaign.id)
        flash(f"Variant {variant.label} is the winner: the rest of the audience gets it now"
              f"{'' if campaign.state == CampaignState.SENDING else ', once the campaign is resumed'}.", "success")
    return redirect(url_for("reports.campaign", campaign_id=campaign.id))


@bp.route("/<int:campaign_id>/resend", methods=["POST"])
@require("edit_content")
def resend(campaign_id):
    campaign = team_campaign_or_404(campaign_id)
    try:
        copy = drafts.resend(campaign, request.form.get("who", ""), current_user.id)
    except CampaignError as exc:
        flash(str(exc), "error")
        return redirect(url_for("campaigns.progress", campaign_id=campaign.id))
    flash("A copy is ready as a draft: check it, then publish.", "success")
    return redirect(url_for("campaigns.edit", campaign_id=copy.id))


@bp.route("/<int:campaign_id>/delete", methods=["POST"])
@require("edit_content")
def delete(campaign_id):
    campaign = team_campaign_or_404(campaign_id)
    try:
        drafts.delete_campaign(campaign)
    except CampaignError as exc:
        flash(str(exc), "error")
        return redirect(url_for("campaigns.progress", campaign_id=campaign.id))
    flash(f"Deleted “{campaign.name}”.", "info")
    return redirect(url_for("campaigns.index"))


# --- Preview and test send (the same renderer and message factory as real sends) -------------

def _preview_contact():
    address = (request.values.get("contact") or "").strip()
    contact = template_services.find_contact(g.team, address) if address else None
    note = f"No contact with the address {address}: showing a sample person." if address and not contact else ""
    return contact, address, note


def _preview_variant(campaign):
    """The A/B variant named by ?variant=B (or the form's), None for the campaign as written; 404 when the
    campaign has no such variant."""
    label = (request.values.get("variant") or "").strip()
    if not label:
        return None
    return ab_testing.variant_of(campaign, label=label) or abort(404)


@bp.route("/<int:campaign_id>/preview")
@require("view")
def preview(campaign_id):
    """The preview pane: subject, the email in a sandboxed frame, the text part; as a chosen contact."""
    campaign = team_campaign_or_404(campaign_id)
    contact, address, note = _preview_contact()
    variant = _preview_variant(campaign)
    summary = template_services.preview_summary(g.team, campaign, contact, variant)
    frame_url = url_for("campaigns.preview_html", campaign_id=campaign.id, contact=address or None,
                        variant=variant.label if variant else None)
    return render_template("email_templates/_preview.html", frame_url=frame_url, contact_note=note,
                           contact_address=address, **summary)


@bp.route("/<int:campaign_id>/preview.html")
@require("view")
def preview_html(campaign_id):
    campaign = team_campaign_or_404(campaign_id)
    contact, _address, _note = _preview_contact()
    return untrusted_html_response(template_services.preview_html(g.team, campaign, contact,
                                                                  _preview_variant(campaign)))


@bp.route("/<int:campaign_id>/test", methods=["POST"])
@require("send")
def send_test(campaign_id):
    campaign = team_campaign_or_404(campaign_id)
    action = url_for("campaigns.send_test", campaign_id=campaign.id)
    results, error, status = [], None, 200
    try:
        addresses = template_services.parse_addresses(request.form.get("addresses", ""))
        contact, _address, _note = _preview_contact()
        results = template_services.send_test(campaign, addresses, g.team, contact, _preview_variant(campaign))
    except template_services.TemplateError as exc:
        error, status = "; ".join(exc.errors.values()), 422
    fragment = render_template("email_templates/_test_send.html", action=action, results=results, error=error,
                               addresses=request.form.get("addresses", ""), contact=request.form.get("contact", ""),
                               variants=ab_testing.variants_of(campaign),
                               chosen_variant=request.form.get("variant", ""))
    if is_htmx():
        return fragment, status
    if not error and results and all(r.ok for r in results):
        flash("Test sent.", "success")
        return redirect(url_for("campaigns.edit", campaign_id=campaign.id))
    # Without htmx: the builder again, with the addresses typed and the message in the test-send card.
    return _builder(campaign, 422 if error else 200, test_send=dict(
        results=results, error=error, addresses=request.form.get("addresses", ""),
        contact=request.form.get("contact", ""), variant=request.form.get("variant", "")))


@bp.route("/<int:campaign_id>/spam-score", methods=["POST"])
@require("edit_content")
def spam_score_check(campaign_id):
    """The "SpamAssassin score" card: the saved message as a recipient gets it, scored by spamd."""
    campaign = team_campaign_or_404(campaign_id)
    contact, _address, _note = _preview_contact()
    variant = _preview_variant(campaign)
    result, error = None, None
    try:
        result = spam_score.score(g.team, campaign, contact, variant)
    except spam_score.SpamScoreError as exc:
        error = str(exc)
    card = dict(result=result, error=error, variant=request.form.get("variant", ""))
    if is_htmx():
        return render_template("campaigns/_spam_score.html", campaign=campaign, variants=ab_testing.variants_of(campaign),
                               **card), 422 if error else 200
    return _builder(campaign, 422 if error else 200, spam_score=card)
