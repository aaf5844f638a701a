"""Automations: the list, the builder (steps edited in place with HTMX), settings, state, test, report."""
from flask import Blueprint
from flask import abort
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user

from app import addresses
from app import clock
from app.automations import deletion
from app.automations import describe
from app.automations import flow
from app.automations import held as held_mail
from app.automations import mail
from app.automations import report
from app.automations import simulate
from app.automations import triggers
from app.campaigns.states import TransitionError
from app.contacts import bulk as bulk_actions
from app.contacts import fields as contact_fields
from app.contacts import lists as mailing_lists
from app.contacts.common import ContactError
from app.email_templates import services as template_services
from app.htmx import is_htmx
from app.models import Automation
from app.models import AutomationState
from app.models import Contact
from app.models import CustomField
from app.models import MailingList
from app.models import Segment
from app.models import StepKind
from app.models import Template
from app.teams.context import require
from app.teams.context import team_object_or_404
from tasks import contacts as contact_tasks
from tasks import sending as sending_tasks

bp = Blueprint("automations", __name__, url_prefix="/automations")
STATE_LABELS = {AutomationState.DRAFT: "Draft", AutomationState.LIVE: "Live", AutomationState.PAUSED: "Paused"}


def _choices(team):
    """What the builder's selects offer: only this team's lists, segments, fields and templates."""
    by_name = lambda model: [(row.id, row.name) for row in model.select().where(model.team == team)  # noqa: E731
                             .order_by(model.name)]
    fields = list(CustomField.select().where(CustomField.team == team).order_by(CustomField.label))
    return {"lists": by_name(MailingList), "segments": by_name(Segment), "templates": by_name(Template),
            "fields": [("name", "Name")] + [(f.key, f.label) for f in fields],
            "date_fields": [(f.key, f.label) for f in fields if f.type == "date"],
            "field_types": contact_fields.FIELD_TYPE_LABELS}


def _context(automation):
    steps = flow.live_steps(automation)
    tree = flow.steps_tree(automation, steps)
    ordered = [node["step"] for node in flow.walk(tree)]
    choices = _choices(automation.team)
    names = {("list", i): n for i, n in choices["lists"]} | {("segment", i): n for i, n in choices["segments"]}
    names |= {("field", k): n for k, n in choices["fields"]}
    return dict(automation=automation, tree=tree, counts=report.step_counts(automation),
                numbers={s.id: i for i, s in enumerate(ordered, start=1)}, names=names, describe=describe,
                email_steps=[s for s in ordered if s.kind == StepKind.EMAIL], choices=choices,
                flow=flow, state_labels=STATE_LABELS, editing=None, form=None, errors=None, error=None,
                held=held_mail.held_steps(automation), resume_error=None, resume_step_id=None, resumed=False)


def _builder(automation, status=200, **extra):
    context = _context(automation)
    context.update(settings=describe.settings_form(automation), problems=flow.problems_for_live(automation) if automation.state != AutomationState.LIVE else [],
                   **extra)
    return render_template("automations/builder.html", **context), status


def _flow_fragment(automation, status=200, **extra):
    context = _context(automation)
    context.update(extra)
    return render_template("automations/_flow.html", **context), status


def _automation(automation_id):
    return team_object_or_404(Automation, automation_id)


def _step(automation, step_id):
    return flow.step_of(automation, step_id) or abort(404)


@bp.route("/")
@require("view")
def index():
    automations = list(Automation.select().where(Automation.team == g.team).order_by(Automation.updated_at.desc()))
    totals = report.totals_by_automation(g.team)
    return render_template("automations/index.html", automations=automations, totals=totals,
                           held=held_mail.held_counts(g.team), state_labels=STATE_LABELS, starters=flow.STARTERS, trigger_labels=flow.TRIGGER_LABELS)


@bp.route("/new", methods=["POST"])
@require("edit_content")
def create():
    try:
        automation = flow.create_automation(g.team, current_user, request.form.get("name", ""),
                                            request.form.get("starter", ""))
    except flow.FlowError as exc:
        automations = list(Automation.select().where(Automation.team == g.team))
        return render_template("automations/index.html", automations=automations,
                               totals=report.totals_by_automation(g.team), held=held_mail.held_counts(g.team),
                               state_labels=STATE_LABELS,
                               starters=flow.STARTERS, trigger_labels=flow.TRIGGER_LABELS, form=request.form,
                               error=exc.message, errors=exc.errors), 422
    return redirect(url_for("automations.builder", automation_id=automation.id))


@bp.route("/<int:automation_id>")
@require("view")
def builder(automation_id):
    return _builder(_automation(automation_id))


@bp.route("/<int:automation_id>/settings", methods=["POST"])
@require("edit_content")
def settings(automation_id):
    automation = _automation(automation_id)
    try:
        flow.update_settings(automation, request.form)
    except flow.FlowError as exc:
        return _builder(automation, 422, form=request.form, error=exc.message, errors=exc.errors)
    flash("Settings saved.", "success")
    return redirect(url_for("automations.builder", automation_id=automation.id))


@bp.route("/<int:automation_id>/steps", methods=["POST"])
@require("edit_content")
def add_step(automation_id):
    automation = _automation(automation_id)
    try:
        where, step_id = flow.parse_position(request.form.get("position"))
        step = flow.add_step(automation, request.form.get("kind", ""), after=step_id if where == "after" else None,
                             branch=(where, step_id) if where in ("yes", "no") else None)
    except flow.FlowError as exc:
        if is_htmx():
            return _flow_fragment(automation, 422, flow_error=exc.message)
        flash(exc.message, "error")
        return redirect(url_for("automations.builder", automation_id=automation.id))
    if is_htmx():  # the new step opens in its edit form, where the focus goes
        return _flow_fragment(automation, editing=step.id, form=None)
    return redirect(url_for("automations.edit_step", automation_id=automation.id, step_id=step.id))


def _card(automation, step, status=200, **extra):
    context = _context(automation)
    context.update(extra)
    return render_template("automations/_card.html", step=step, **context), status


@bp.route("/<int:automation_id>/steps/<int:step_id>")
@require("view")
def step_card(automation_id, step_id):
    automation = _automation(automation_id)
    # focus=remove: back from "Remove? cancel", the focus returns to the step's Remove button
    return _card(automation, _step(automation, step_id), refocus=request.args.get("focus", ""))


@bp.route("/<int:automation_id>/steps/<int:step_id>/edit")
@require("edit_content")
def edit_step(automation_id, step_id):
    automation = _automation(automation_id)
    step = _step(automation, step_id)
    if is_htmx():
        return _card(automation, step, editing=step.id)
    return _builder(automation, editing=step.id)


@bp.route("/<int:automation_id>/steps/<int:step_id>", methods=["POST"])
@require("edit_content")
def save_step(automation_id, step_id):
    automation = _automation(automation_id)
    step = _step(automation, step_id)
    try:
        flow.edit_step(automation, step, request.form)
    except flow.FlowError as exc:
        if is_htmx():
            return _card(automation, step, 422, editing=step.id, form=request.form, error=exc.message,
                         errors=exc.errors)
        return _builder(automation, 422, editing=step.id, form=request.form, error=exc.message, errors=exc.errors)
    if is_htmx():
        return _card(automation, step, saved=True)
    flash("Step saved.", "success")
    return redirect(url_for("automations.builder", automation_id=automation.id) + f"#step-{step.id}")


@bp.route("/<int:automation_id>/steps/<int:step_id>/remove")
@require("edit_content")
def confirm_remove_step(automation_id, step_id):
    """Removing a step asks first: inside its card with HTMX, on a page of its own without JavaScript."""
    automation = _automation(automation_id)
    step = _step(automation, step_id)
    preview = flow.removal_preview(automation, step)
    if is_htmx():
        return _card(automation, step, confirm_remove=preview)
    context = _context(automation)
    return render_template("automations/remove_step.html", step=step, preview=preview, inline=False, **context)


@bp.route("/<int:automation_id>/steps/<int:step_id>/remove", methods=["POST"])
@require("edit_content")
def remove_step(automation_id, step_id):
    automation = _automation(automation_id)
    flow.remove_step(automation, _step(automation, step_id), clock.now())
    if is_htmx():
        return _flow_fragment(automation)
    flash("Step removed.", "success")
    return redirect(url_for("automations.builder", automation_id=automation.id))


@bp.route("/<int:automation_id>/state", methods=["POST"])
@require("send")
def change_state(automation_id):
    automation = _automation(automation_id)
    action = request.form.get("action", "")
    try:
        automation = flow.change_state(automation, action)
    except flow.FlowError as exc:
        return _builder(automation, 422, state_error=exc.message)
    if action == "live":  # the segment baseline: members at go-live never enter (a paused one keeps it current)
        triggers.went_live(automation, clock.now())
    if action == "resume":  # the steps' mail the engine held resumes too, where its cause is gone
        triggers.resumed(automation, clock.now())
        resumed, refused = held_mail.resume_held(automation, who=current_user.email)
        for campaign_id in resumed:
            sending_tasks.send_campaign(campaign_id)
        if refused:
            flash(f"{len(refused)} email step{'s' if len(refused) != 1 else ''} still on hold: "
                  + " ".join(dict.fromkeys(refused.values())), "warning")
    flash({"live": "The automation is live.", "pause": "Paused: no contact moves on until you resume it.",
           "resume": "Resumed.", "draft": "Back to draft."}[action], "success")
    return redirect(url_for("automations.builder", automation_id=automation.id))


def _delete_confirmation(automation, status=200, **extra):
    context = dict(automation=automation, refusal=deletion.refusal(automation),
                   waiting=deletion.waiting_runs(automation), **extra)
    if is_htmx():
        return render_template("automations/_delete.html", **context), status
    return render_template("automations/delete.html", **context), status


@bp.route("/<int:automation_id>/delete")
@require("send")
def confirm_delete(automation_id):
    """The confirmation: how many runs are still waiting and that they stop (or, when live: pause it first)."""
    return _delete_confirmation(_automation(automation_id))


@bp.route("/<int:automation_id>/delete", methods=["POST"])
@require("send")
def delete(automation_id):
    automation = _automation(automation_id)
    try:
        stopped = deletion.delete_automation(automation, current_user.email)
    except deletion.DeletionError as exc:
        return _delete_confirmation(automation, exc.status, delete_error=exc.message)
    flash(f"“{automation.name}” was deleted" + (f"; {stopped:,} contact{'s' if stopped != 1 else ''} stopped where "
                                               "they were." if stopped else "."), "success")
    return redirect(url_for("automations.index"))


@bp.route("/<int:automation_id>/steps/<int:step_id>/resume", methods=["POST"])
@require("send")
def resume_step(automation_id, step_id):
    """Resume an email step's mail that Loft held (its hidden campaign paused), with the checks a campaign's Resume
    runs; a cause still there is shown on the step's card and nothing changes."""
    automation = _automation(automation_id)
    # A removed step's held mail still waits: the builder's summary offers its Resume (there is no card for it).
    step = held_mail.email_step_of(automation, step_id) or abort(404)
    try:
        campaign = held_mail.resume_step(step, who=current_user.email)
    except (TransitionError, held_mail.HeldError) as exc:
        # 422, as every refusal shown in place (htmx swaps 2xx and 422 only, base.html's htmx-config).
        if is_htmx():
            return _card(automation, step, 422, resume_error=exc.message)
        return _builder(automation, 422, resume_error=exc.message, resume_step_id=step.id)
    sending_tasks.send_campaign(campaign.id)
    if is_htmx():
        return _card(automation, step, resumed=True)
    flash("Sending again: the emails waiting at this step go out now.", "success")
    return redirect(url_for("automations.builder", automation_id=automation.id) + f"#step-{step.id}")


@bp.route("/<int:automation_id>/start", methods=["POST"])
@require("send")
def start(automation_id):
    """Start a live, hand-started automation for the subscribed contacts of one of the team's lists. It runs as the
    contacts area's bulk action "Start an automation" (a task, recorded in the audit log), whose page shows its
    progress: a list of 100,000 enters in a worker in seconds, not inside this request."""
    automation = _automation(automation_id)
    try:
        triggers.require_live(automation)
        chosen = mailing_lists.get_list(g.team, request.form.get("list_id", type=int) or 0)
        if chosen is None:
            raise triggers.TriggerError("Choose one of your lists.", field="list_id")
        job = bulk_actions.start_bulk(g.team, current_user, {
            "action": "start_automation", "automation_id": automation.id,
            "scope": "filter", "list": chosen.id, "list_status": "subscribed"})
    except (triggers.TriggerError, ContactError) as exc:
        return _builder(automation, 422, start_error=str(exc))
    contact_tasks.run_bulk(job.id)
    return redirect(url_for("contacts.bulk_status", job_id=job.id))


@bp.route("/<int:automation_id>/test", methods=["POST"])
@require("send")
def send_test(automation_id):
    automation = _automation(automation_id)
    try:
        contact = None
        if request.form.get("test_contact", "").strip():  # whose data fills the merge fields: one of the team's
            contact = Contact.get_or_none((Contact.team == g.team)
                                          & (Contact.email == addresses.lookup_form(request.form["test_contact"])))
            if contact is None:
                raise template_services.TemplateError(errors={"test_contact": "No contact of this team has that "
                                                                              "address."})
        sent = mail.send_test(automation, request.form.get("test_email", ""), contact)
    except template_services.TemplateError as exc:
        message = "; ".join(exc.errors.values()) or str(exc)
        if is_htmx():
            return render_template("automations/_test.html", automation=automation, test_error=message,
                                   test_email=request.form.get("test_email", ""),
                                   test_contact=request.form.get("test_contact", "")), 422
        return _builder(automation, 422, test_error=message, test_email=request.form.get("test_email", ""),
                        test_contact=request.form.get("test_contact", ""))
    message = f"Sent {sent} test email{'s' if sent != 1 else ''}: every email step, waits skipped."
    if is_htmx():
        return render_template("automations/_test.html", automation=automation, test_done=message,
                               test_email=request.form.get("test_email", ""),
                               test_contact=request.form.get("test_contact", ""))
    flash(message, "success")
    return redirect(url_for("automations.builder", automation_id=automation.id))


@bp.route("/<int:automation_id>/report")
@require("view")
def report_page(automation_id):
    automation = _automation(automation_id)
    counts = report.step_counts(automation)
    labels, values = report.entries_per_day(automation, clock.now().date())
    return render_template("automations/report.html", automation=automation, totals=report.run_totals(automation),
                           chart=report.entries_chart(labels, values), labels=labels, values=values,
                           emails=report.email_rates(flow.ordered_steps(automation), counts),
                           state_labels=STATE_LABELS)


@bp.route("/<int:automation_id>/simulate")
@require("view")
def simulate_page(automation_id):
    """Who would enter over the next 7 days and when each email would go out: a read-only preview."""
    automation = _automation(automation_id)
    preview = simulate.preview(automation, clock.now(), days=7)
    context = dict(automation=automation, preview=preview, numbers=_context(automation)["numbers"],
                   trigger_labels=flow.TRIGGER_LABELS, state_labels=STATE_LABELS)
    if is_htmx():
        return render_template("automations/_simulate.html", **context)
    return render_template("automations/simulate.html", **context)
