"""AI help in the campaign builder: suggestions, drafts and rewrites run as background jobs the page polls;
the team's AI usage page."""
from flask import Blueprint
from flask import abort
from flask import flash
from flask import g
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user

from app.ai import generate
from app.ai import jobs
from app.ai import subject_lines
from app.ai import usage
from app.ai import writing
from app.campaigns import ab_testing
from app.campaigns.listing import team_campaign_or_404
from app.content.blocks.schema import BlockProblem
from app.errors import Problem
from app.htmx import hx_redirect
from app.htmx import is_htmx
from app.models import AiJob
from app.reports import charts
from app.security import untrusted_html_response
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


@bp.app_template_global("ai_suggestions")
def ai_suggestions(job):
    """A subject-line job's suggestions, each with its flags and any merge-tag problem."""
    return subject_lines.suggestions(g.team, job)


def _team_job(job_id):
    return team_object_or_404(AiJob, job_id)


def _back_to_builder(job, message, category="success"):
    flash(message, category)
    if job.campaign_id is None:
        return redirect(url_for("campaigns.index"))
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
    campaign = team_campaign_or_404(campaign_id)
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
    found = jobs.expire_if_stale(_team_job(job_id))
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
    link = dict(notice_href="#ab-test", notice_link="See the A/B test") if ab_changed else {}
    html = render_template("ai/_job.html", job=found, result=found.result or {}, notice=message, **link)
    html += render_template("ai/_subject_fields.html", campaign=campaign)
    if ab_changed:
        html += render_template("campaigns/_ab_test.html", campaign=campaign, editable=True, ab_oob=True,
                                ab=ab_testing.ab_test(campaign),
                                variant_values=ab_testing.ab_form_values(campaign),
                                ab_tests=ab_testing.AB_TESTS, ab_labels=ab_testing.AB_LABELS)
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
    return _suggestions_changed(found, campaign, f"Saved as an A/B test of subject lines: variants {labels}.",
                                ab_changed=True)


# --- Drafts and rewrites ---

# A draft or rewrite job answers in its own card (templates/ai/_result_draft.html, _result_rewrite.html);
# accepting, undoing and discarding swap that card, and the builder's body field and preview follow.

WRITING_KINDS = ("draft", "rewrite")


def _writing_job(job_id):
    job = team_object_or_404(AiJob, job_id)
    if job.kind not in WRITING_KINDS or job.campaign_id is None:
        abort(404)
    return job


def _started(campaign, kind, inputs, context, form_template, **form_context):
    """Start the job and answer with the form and the job's polled card; a refusal shows the form again with
    the words at its fields."""
    try:
        job = jobs.start(g.team, current_user.id, campaign, kind, inputs, context=context,
                         regenerate=bool(request.form.get("regenerate")))
    except Problem as problem:
        return _writing_refused(campaign, form_template, problem, **form_context)
    run_ai_job(job.id)
    job = AiJob.get_by_id(job.id)
    if not is_htmx():
        return redirect(url_for("campaigns.edit", campaign_id=campaign.id) + f"#ai-job-{job.id}")
    return render_template(form_template, campaign=campaign, writing_job=job, ai_form=request.form, **form_context)


def _writing_refused(campaign, form_template, problem, **form_context):
    if not is_htmx():
        flash(problem.message, "error")
        return redirect(url_for("campaigns.edit", campaign_id=campaign.id))
    return render_template(form_template, campaign=campaign, writing_job=None, ai_form=request.form,
                           ai_errors=problem.errors, ai_error=problem.message, **form_context), 422


@bp.route("/campaigns/<int:campaign_id>/draft", methods=["POST"])
@require("edit_content")
def start_draft(campaign_id):
    campaign = team_campaign_or_404(campaign_id)
    try:
        inputs = writing.draft_inputs(g.team, campaign, request.form)
    except writing.WritingError as problem:
        return _writing_refused(campaign, "ai/_draft_form.html", problem)
    return _started(campaign, "draft", inputs, {}, "ai/_draft_form.html")


@bp.route("/campaigns/<int:campaign_id>/rewrite", methods=["POST"])
@require("edit_content")
def start_rewrite(campaign_id):
    campaign = team_campaign_or_404(campaign_id)
    try:
        inputs, context = writing.rewrite_inputs(g.team, campaign, request.form)
    except writing.WritingError as problem:
        return _writing_refused(campaign, "ai/_rewrite_form.html", problem)
    return _started(campaign, "rewrite", inputs, context, "ai/_rewrite_form.html")


@bp.route("/campaigns/<int:campaign_id>/blocks/<block_id>/rewrite", methods=["POST"])
@require("edit_content")
def start_block_rewrite(campaign_id, block_id):
    campaign = team_campaign_or_404(campaign_id)
    try:
        inputs, context = writing.block_rewrite_inputs(g.team, campaign, block_id, request.form)
    except writing.WritingError as problem:
        return _writing_refused(campaign, "ai/_block_rewrite_form.html", problem, block_id=block_id)
    return _started(campaign, "rewrite", inputs, context, "ai/_block_rewrite_form.html", block_id=block_id)


def _result_card(job, campaign, message="", problem=None, changed=False):
    """The job's result card again (after accept, undo or a refusal), with the builder's fields out of band."""
    if not is_htmx():
        flash(problem.message if problem else message, "error" if problem else "success")
        return redirect(url_for("campaigns.edit", campaign_id=campaign.id) + f"#ai-job-{job.id}")
    body = render_template(f"ai/_result_{job.kind}.html", job=job, result=job.result, campaign=campaign,
                           message=message, error=problem.message if problem else "", changed=changed)
    response = make_response(body, 422 if problem else 200)
    if changed:
        response.headers["HX-Trigger"] = "blocks-changed"  # the builder's preview reloads the saved email
    return response


@bp.route("/jobs/<int:job_id>/accept", methods=["POST"])
@require("edit_content")
def accept(job_id):
    job = _writing_job(job_id)
    campaign = job.campaign
    kind_before = campaign.kind
    try:
        writing.accept(g.team, campaign, job, use_subject=bool(request.form.get("use_subject")))
    except (writing.WritingError, BlockProblem) as problem:
        return _result_card(job, campaign, problem=problem)
    if kind_before != campaign.kind and is_htmx():  # the builder shows another editor: load it whole
        flash("The proposal is in the email. Undo is next to it in the AI panel.", "success")
        return hx_redirect(url_for("campaigns.edit", campaign_id=campaign.id) + f"#ai-job-{job.id}")
    return _result_card(job, campaign, "The proposal is in the email; the previous version is kept for Undo.",
                        changed=True)


@bp.route("/jobs/<int:job_id>/undo", methods=["POST"])
@require("edit_content")
def undo(job_id):
    job = _writing_job(job_id)
    campaign = job.campaign
    kind_before = campaign.kind
    try:
        writing.undo(g.team, campaign, job)
    except (writing.WritingError, BlockProblem) as problem:
        return _result_card(job, campaign, problem=problem)
    if kind_before != campaign.kind and is_htmx():
        flash("Undone: the email is as it was before the proposal.", "success")
        return hx_redirect(url_for("campaigns.edit", campaign_id=campaign.id) + f"#ai-job-{job.id}")
    return _result_card(job, campaign, "Undone: the email is as it was before the proposal.", changed=True)


@bp.route("/jobs/<int:job_id>/discard", methods=["POST"])
@require("edit_content")
def discard(job_id):
    job = _writing_job(job_id)
    campaign = job.campaign
    try:
        writing.discard(g.team, job)
    except writing.WritingError as problem:
        return _result_card(job, campaign, problem=problem)
    if not is_htmx():
        flash("Discarded.", "info")
        return redirect(url_for("campaigns.edit", campaign_id=campaign.id))
    return render_template("ai/_discarded.html", job=job)


@bp.route("/jobs/<int:job_id>/regenerate", methods=["POST"])
@require("edit_content")
def regenerate(job_id):
    """The same draft or rewrite asked again, past the cache; the new job's card takes the old one's place."""
    job = _writing_job(job_id)
    try:
        writing.check_editable(job.campaign)
        again = jobs.start(g.team, current_user.id, job.campaign, job.kind, dict(job.inputs),
                           context=dict(job.context or {}), regenerate=True)
    except Problem as problem:
        if not is_htmx():
            flash(problem.message, "error")
            return redirect(url_for("campaigns.edit", campaign_id=job.campaign_id) + f"#ai-job-{job.id}")
        return render_template("ai/_job.html", job=job, result=job.result or {}, problem=problem.message), 422
    run_ai_job(again.id)
    again = AiJob.get_by_id(again.id)
    if not is_htmx():
        return redirect(url_for("campaigns.edit", campaign_id=again.campaign_id) + f"#ai-job-{again.id}")
    return render_template("ai/_job.html", job=again, result=again.result or {})


@bp.route("/jobs/<int:job_id>/proposal.html")
@require("view")
def proposal_html(job_id):
    """The proposed email in the builder's sandboxed preview frame (checked again; never the raw answer)."""
    job = _writing_job(job_id)
    return untrusted_html_response(writing.proposal_preview(g.team, job.campaign, job))


@bp.app_template_global("ai_proposal")
def ai_proposal(job):
    """The checked proposal of a draft or rewrite job, for its result card."""
    return writing.proposal(g.team, job.campaign, job)


@bp.app_template_global("ai_writing_choices")
def ai_writing_choices():
    """What the draft and rewrite forms offer."""
    return writing.choices()


@bp.app_template_global("ai_writing_on")
def ai_writing_on():
    """Whether AI help is on for the current team (asked once per request: the block editor asks per block)."""
    if "ai_writing_on" not in g:
        g.ai_writing_on = generate.status(g.team).enabled
    return g.ai_writing_on


@bp.app_template_global("ai_latest_writing_job")
def ai_latest_writing_job(campaign, kind, block_id=None):
    """The newest draft or rewrite job of the campaign (of one block, with block_id) to show on the page."""
    return writing.latest_job(g.team, campaign, kind, block_id)


# --- Usage ---

@bp.route("/usage", endpoint="usage")
@require("view")
def usage_page():
    summary = usage.for_team(g.team)
    labels = [month for month, _, _ in summary.months]
    chart = charts.bar_chart("AI cost per month, US dollars", labels,
                             [("Cost (USD)", [round(cost, 4) for _, cost, _ in summary.months])],
                             description=summary.chart_description())
    return render_template("ai/usage.html", usage=summary, chart=chart, labels=labels)
