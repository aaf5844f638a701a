"""Views of the media library: the library page, uploads, deletion, the image picker the block editor opens,
and the public file at /m/<key>.<ext> that emails show.

Thin views: items are loaded through g.team (team_object_or_404), so another team's image id is a 404.
The public file needs no sign-in and is cached for a year: its key never names another file.
"""
import re

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

from app.config import Config
from app.htmx import is_htmx
from app.media import services
from app.media.services import MediaProblem
from app.models import MediaItem
from app.security import UPLOADED_IMAGE_CSP
from app.security import accepts_upload
from app.teams.context import load_current_team
from app.teams.context import require
from app.teams.context import team_object_or_404
from app.teams.permissions import can

bp = Blueprint("media", __name__)

MAX_FILES = 10  # per upload form
# The body may hold MAX_FILES images of the largest size, and the form around them.
UPLOAD_BODY_LIMIT = MAX_FILES * Config.MEDIA_MAX_MB * 1024 * 1024 + 256 * 1024
YEAR = 31536000
_INPUT_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,99}$")  # also a CSS selector as written


def _picker_targets(values):
    """The ids of the inputs a chosen image fills (the page's own controls), or "" when not a usable id."""
    targets = {}
    for name in ("target_src", "target_alt"):
        value = (values.get(name) or "").strip()
        targets[name] = value if _INPUT_ID.match(value) else ""
    return targets


def _render(status=200, errors=None, picker=False, values=None):
    """The library page, its fragment for a search, or the picker; `values`: the request's (its query only
    when the body was refused unread)."""
    values = request.values if values is None else values
    search = (values.get("q") or "").strip()
    context = {"items": services.library(g.team, search), "search": search, "total": services.count(g.team),
               "errors": errors or {}, "max_mb": current_app.config["MEDIA_MAX_MB"], "max_files": MAX_FILES,
               "size_label": services.size_label}
    if picker:
        return render_template("media/_picker.html", **context, **_picker_targets(values)), status
    if is_htmx() and request.method == "GET":
        return render_template("media/_library.html", **context), status
    return render_template("media/index.html", **context), status


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc):
    """A body over the upload limit, refused before it was read: say so on the upload form."""
    message = (f"These files are larger than one upload takes ({UPLOAD_BODY_LIMIT // (1024 * 1024):,} MB). "
               f"Upload fewer at a time; each image may be at most {current_app.config['MEDIA_MAX_MB']} MB.")
    # The body is refused while the CSRF hook reads the form, before the team was loaded.
    load_current_team()
    if g.membership is None or not can(g.membership.role, "edit_content"):
        return render_template("errors/error.html", code=413, title="Files too large", description=message), 413
    return _render(413, errors={"files": message}, picker=bool(request.args.get("picker")), values=request.args)


@bp.route("/media/")
@require("view")
def index():
    return _render()


@bp.route("/media/picker")
@require("edit_content")
def picker():
    return _render(picker=True)


@bp.route("/media/upload", methods=["POST"])
@accepts_upload(UPLOAD_BODY_LIMIT)
@require("edit_content")
def upload():
    picker_mode = bool(request.args.get("picker"))
    files = [upload for upload in request.files.getlist("files") if upload.filename]
    if not files:
        return _render(422, errors={"files": "Choose one or more images to upload."}, picker=picker_mode)
    if len(files) > MAX_FILES:
        return _render(422, errors={"files": f"Upload at most {MAX_FILES} images at a time."}, picker=picker_mode)
    refusals, added, known = [], [], []
    for upload_file in files:
        try:
            item, is_new = services.upload(g.team, current_user, upload_file.filename, upload_file.stream)
        except MediaProblem as exc:
            refusals.append(exc.message)
            continue
        if is_new:
            added.append(item.name)
        else:
            uploaded = services.clean_name(upload_file.filename)
            known.append(f"“{uploaded}”" + (f" (as “{item.name}”)" if item.name != uploaded else ""))
    if added:
        flash(f"Uploaded {_names(added)}.", "success")
    if known:
        flash(f"Already in the library: {', '.join(known)}.", "info")
    if refusals:
        return _render(422, errors={"files": " ".join(refusals)}, picker=picker_mode)
    if picker_mode:
        return _render(picker=True)
    return redirect(url_for("media.index"))


def _names(names):
    quoted = [f"“{name}”" for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


@bp.route("/media/<int:item_id>/delete", methods=["POST"])
@require("edit_content")
def delete(item_id):
    item = team_object_or_404(MediaItem, item_id)
    services.delete(g.team, item)
    flash(f"Deleted “{item.name}”.", "success")
    return redirect(url_for("media.index", q=request.form.get("q") or None))


@bp.route("/m/<filename>")
def public_file(filename):
    """An image as emails show it: no sign-in, cached for a year, never run as anything but an image."""
    item = services.find_public(filename)
    if item is None:
        abort(404)
    try:
        response = send_file(services.file_path(item), mimetype=item.content_type, conditional=True, etag=True,
                             max_age=YEAR)
    except FileNotFoundError:
        abort(404)
    response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = UPLOADED_IMAGE_CSP
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"  # shown by mail clients on other sites
    return response


public_file.public = True  # emails load it: no team, no sign-in
