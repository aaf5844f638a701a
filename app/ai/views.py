"""AI help in the campaign builder: suggestions, drafts and rewrites run as background jobs the page polls;
the team's AI usage page."""
from flask import Blueprint
from flask import abort
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user

from app.ai import generate
from app.ai import jobs
from app.ai import subject_lines
from app.campaigns import services as campaign_services
from app.errors import Problem
from app.htmx import is_htmx
from app.models import AiJob
from app.models import Campaign
from app.teams.context import require
from app.teams.context import team_object_or_404
from tasks.ai import run_ai_job

bp = Blueprint("ai", __name__, url_prefix="/ai")

# --- Jobs and subject lines ---

# The builder's AI card (templates/ai/_panel.html) starts jobs; each job's card (templates/ai/_job.html)
# polls GET /ai/jobs/<id>?waiting=1 every second, answered with 204 (nothing to swap, so the Cancel
# button keeps its focus) until the job has finished, then with the card of its result.


@bp.app_template_global("ai_panel_context")
def ai_panel_context(campaign):
    """What the builder's AI card shows: whether AI is on (and if not, how it is turned on), and the
    campaign's latest subject-line job."""
    return {"status": generate.status(g.team), "job": jobs.latest(g.team, campaign, subject_lines.KIND)}


def _team_job(job_id):
    return team_object_or_404(AiJob, job_id)


def _back_to_builder(job, message, category="success"):
    flash(message, category)
    return redirect(url_for("campaigns.edit", campaign_id=job.campaign_id) + "#ai-panel")


def _subject_card(campaign, job=None, status=200, **extra):
    if not is_htmx():
        if extra.get("error"):
            flash(extra["error"], "error")
        return redirect(url_for("campaigns.edit", campaign_id=campaign.id) + "#ai-panel")
    return render_template("ai/_subject_lines.html", campaign=campaign, job=job, **extra), status


@bp.route("/campaigns/<int:campaign_id>/subject-lines", methods=["POST"])
@require("edit_content")
def suggest_subject_lines(campaign_id):
    """Five subject lines with preheaders, from the brief or (with none) the campaign's saved content."""
    campaign = team_object_or_404(Campaign, campaign_id)
    try:
        job = subject_lines.start(g.team, current_user.id, campaign, request.form.get("brief", ""),
                                  regenerate=bool(request.form.get("regenerate")))
    except Problem as problem:
        return _subject_card(campaign, jobs.latest(g.team, campaign, subject_lines.KIND), 422, form=request.form,
                             error=problem.message, errors=problem.errors)
    run_ai_job(job.id)
    return _subject_card(campaign, AiJob.get_by_id(job.id), form=request.form)


def _job_card(job, status=200, **extra):
    return render_template("ai/_job.html", job=job, result=job.result or {}, **extra), status


@bp.route("/jobs/<int:job_id>")
@require("edit_content")
def job(job_id):
    found = _team_job(job_id)
    if request.args.get("waiting") and found.state in jobs.WAITING:
        return "", 204
    if not is_htmx() and found.campaign_id:
        return redirect(url_for("campaigns.edit", campaign_id=found.campaign_id) + f"#ai-job-{found.id}")
    return _job_card(found)


@bp.route("/jobs/<int:job_id>/cancel", methods=["POST"])
@require("edit_content")
def cancel_job(job_id):
    found = jobs.cancel(g.team, _team_job(job_id))
    if not is_htmx():
        return _back_to_builder(found, "Cancelled: nothing was changed.", "info")
    return _job_card(found)


@bp.route("/jobs/<int:job_id>/retry", methods=["POST"])
@require("edit_content")
def retry_job(job_id):
    """Try again: a new job with the same request, in the place of the failed or cancelled one."""
    found = _team_job(job_id)
    try:
        again = jobs.retry(g.team, current_user.id, found)
    except Problem as problem:
        if not is_htmx():
            return _back_to_builder(found, problem.message, "error")
        return _job_card(found, 422, problem=problem.message)
    run_ai_job(again.id)
    again = AiJob.get_by_id(again.id)
    if not is_htmx():
        return _back_to_builder(again, "Asked again.", "info")
    return _job_card(again)


def _subject_job(job_id):
    found = _team_job(job_id)
    if found.kind != subject_lines.KIND:
        abort(404)
    return found


def _suggestions_changed(found, campaign, message, ab_changed=False):
    """The job's card again, with the builder's subject and preheader fields (and, after a new test,
    its A/B section) swapped out of band; other unsaved typing in the builder stays."""
    if not is_htmx():
        return _back_to_builder(found, message)
    html = render_template("ai/_job.html", job=found, result=found.result or {}, notice=message)
    html += render_template("ai/_subject_fields.html", campaign=campaign)
    if ab_changed:
        html += render_template("campaigns/_ab_test.html", campaign=campaign, editable=True, ab_oob=True,
                                ab=campaign_services.ab_test(campaign),
                                variant_values=campaign_services.ab_form_values(campaign),
                                ab_tests=campaign_services.AB_TESTS, ab_labels=campaign_services.AB_LABELS)
    return html


def _suggestions_refused(found, problem):
    if not is_htmx():
        return _back_to_builder(found, problem.message, "error")
    return _job_card(found, 422, problem=problem.message)


@bp.route("/jobs/<int:job_id>/use/<int:index>", methods=["POST"])
@require("edit_content")
def use_subject(job_id, index):
    """Suggestion `index` becomes the campaign's subject and preheader (saved; Undo puts back the old)."""
    found = _subject_job(job_id)
    try:
        campaign = subject_lines.use(g.team, found, index)
    except Problem as problem:
        return _suggestions_refused(found, problem)
    return _suggestions_changed(found, campaign, f"Saved as the subject: “{campaign.subject}”.")


@bp.route("/jobs/<int:job_id>/undo-subject", methods=["POST"])
@require("edit_content")
def undo_subject(job_id):
    found = _subject_job(job_id)
    try:
        campaign = subject_lines.undo(g.team, found)
    except Problem as problem:
        return _suggestions_refused(found, problem)
    return _suggestions_changed(found, campaign, f"Undone: the subject is “{campaign.subject}” again.")


@bp.route("/jobs/<int:job_id>/ab-test", methods=["POST"])
@require("edit_content")
def subject_ab_test(job_id):
    """The ticked suggestions become the campaign's subject A/B test (A = the first, B.. the rest)."""
    found = _subject_job(job_id)
    try:
        campaign, variants = subject_lines.make_ab_test(g.team, found, request.form.getlist("pick"))
    except Problem as problem:
        return _suggestions_refused(found, problem)
    labels = ", ".join(v.label for v in variants[:-1]) + f" and {variants[-1].label}"
    return _suggestions_changed(found, campaign, f"Saved as an A/B test of subject lines: variants {labels}, "
                                                 "shown in the A/B test section below.", ab_changed=True)


# --- Drafts and rewrites ---

# --- Usage ---
