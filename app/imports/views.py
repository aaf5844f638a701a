"""Views of the imports area: upload a CSV file, map its columns, watch it import.

Thin views: every lookup goes through g.team, so another team's import id
is a 404. The import itself runs as a huey task (tasks/imports.py).
"""
import os

from flask import Blueprint
from flask import abort
from flask import current_app
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import send_file
from flask import url_for
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge

from app.contacts.fields import fields_of
from app.contacts.lists import lists_of
from app.htmx import is_htmx
from app.imports import screening
from app.imports import services
from app.imports.services import ImportProblem
from app.models import ImportJob
from app.security import accepts_upload
from app.teams.context import load_current_team
from app.teams.context import require
from app.teams.context import team_object_or_404
from app.teams.permissions import can
from tasks import imports as import_tasks

bp = Blueprint("imports", __name__, url_prefix="/imports")


@bp.context_processor
def labels():
    return {"status_labels": services.STATUS_LABELS, "modes": services.MODES}


def _render_index(status=200, **context):
    return render_template("imports/index.html", imports=services.recent_imports(g.team),
                           max_mb=_max_mb(), **context), status


def _max_mb():
    return (current_app.config.get("MAX_UPLOAD_LENGTH") or 0) // (1024 * 1024)


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc):
    """A body over this request's limit (MAX_UPLOAD_LENGTH on the upload): say so on the upload form."""
    limit = request.max_content_length or 0
    size = f"{limit / (1024 * 1024):,.0f} MB" if limit >= 1024 * 1024 else f"{limit:,} bytes"
    message = (f"The file is larger than the upload limit of {size}. Split it into smaller files, "
               "or import it on the server with `flask contacts import`.")
    # Werkzeug refuses the body while the CSRF hook reads the form, before the hooks that load
    # the team ran: load it here, and show the upload page only to those who may use it.
    load_current_team()
    if g.membership is None or not can(g.membership.role, "edit_content"):
        return render_template("errors/error.html", code=413, title="File too large", description=message), 413
    return _render_index(413, errors={"file": message})


@bp.route("/", methods=["GET", "POST"])
@accepts_upload()
@require("edit_content")
def index():
    if request.method == "POST":
        upload = request.files.get("file")
        try:
            if upload is None:
                raise ImportProblem("Choose a CSV file to upload.", field="file")
            job = services.save_upload(g.team, current_user, upload.filename, upload.stream)
        except ImportProblem as exc:
            return _render_index(422, errors={"file": str(exc)})
        return redirect(url_for("imports.map_columns", job_id=job.id))
    return _render_index()


@bp.route("/<int:job_id>/map", methods=["GET", "POST"])
@require("edit_content")
def map_columns(job_id):
    job = team_object_or_404(ImportJob, job_id)
    if job.status != "uploaded":
        return redirect(url_for("imports.show", job_id=job.id))
    try:
        sniffed = services.describe(job)
    except ImportProblem as exc:
        flash(str(exc), "error")
        return redirect(url_for("imports.index"))
    if request.method == "POST":
        form = request.form
        mapping = {str(i): form.get(f"column-{i}", "") for i in range(len(sniffed.columns))}
        try:
            job = services.configure(g.team, job, mapping, form.getlist("list_ids"), form.get("mode", ""),
                                     sniffed.columns)
        except ImportProblem as exc:
            return _render_map(job, sniffed, mapping, form.getlist("list_ids"), form.get("mode", "add"),
                               error=str(exc), errors=exc.errors, status=422)
        import_tasks.run_import(job.id)
        return redirect(url_for("imports.show", job_id=job.id))
    return _render_map(job, sniffed, job.mapping, [], "add")


def _render_map(job, sniffed, mapping, list_ids, mode, error=None, errors=None, status=200):
    fields = fields_of(g.team)
    return render_template("imports/map.html", job=job, sniffed=sniffed, mapping=mapping,
                           choices=services.column_choices(sniffed.columns, fields),
                           lists=lists_of(g.team), list_ids={str(i) for i in list_ids}, mode=mode,
                           size=_size(job.path), error=error, errors=errors or {},
                           address_checks=screening.POLICIES.get(g.team.import_validation, "")), status


def _size(path):
    try:
        size = os.path.getsize(path)
    except OSError:
        return ""
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024


@bp.route("/<int:job_id>/discard", methods=["POST"])
@require("edit_content")
def discard(job_id):
    job = team_object_or_404(ImportJob, job_id)
    try:
        services.discard(g.team, job)
    except ImportProblem as exc:
        flash(str(exc), "error")
        return redirect(url_for("imports.show", job_id=job.id))
    flash(f"The upload “{job.filename}” was discarded.", "info")
    return redirect(url_for("imports.index"))


@bp.route("/<int:job_id>")
@require("edit_content")
def show(job_id):
    """The progress of an import, then its report. htmx polls the fragment while it runs."""
    job = team_object_or_404(ImportJob, job_id)
    if job.status == "uploaded":
        return redirect(url_for("imports.map_columns", job_id=job.id))
    context = dict(job=job, stalled=services.is_stalled(job), has_rejects=_has_rejects(job),
                   summary=services.summary(job))
    if is_htmx():
        return render_template("imports/_progress.html", **context)
    return render_template("imports/show.html", **context)


def _has_rejects(job):
    return bool(job.rejected or job.duplicates or job.blocked or job.partial) and bool(job.rejects_path) \
        and os.path.exists(job.rejects_path)


@bp.route("/<int:job_id>/resume", methods=["POST"])
@require("edit_content")
def resume(job_id):
    job = team_object_or_404(ImportJob, job_id)
    try:
        job = services.resume(g.team, job)
    except ImportProblem as exc:
        flash(str(exc), "error")
        return redirect(url_for("imports.show", job_id=job.id))
    import_tasks.run_import(job.id)
    return redirect(url_for("imports.show", job_id=job.id))


@bp.route("/<int:job_id>/rejects.csv")
@require("edit_content")
def rejects(job_id):
    """Every row that was rejected, a duplicate, or not subscribed, with the reason, as CSV."""
    job = team_object_or_404(ImportJob, job_id)
    if not job.rejects_path or not os.path.exists(job.rejects_path):
        abort(404, description="This import has no file of rejected rows.")
    stem = os.path.splitext(job.filename)[0] or "import"
    response = send_file(job.rejects_path, mimetype="text/csv", as_attachment=True,
                         download_name=f"{stem}-rejected-rows.csv", max_age=0)
    response.headers["Cache-Control"] = "no-store"
    return response
