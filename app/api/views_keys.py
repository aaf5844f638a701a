"""The "API keys" settings page of a team: list, create (the key shown once), revoke.

Administrators only ("manage_api_keys"), for reading too: a key can act as any role, Administrator
included, and even the list tells which scripts can reach the team's data.
"""
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

from app.api import keys
from app.htmx import is_htmx
from app.models import ROLE_LABELS
from app.models import ROLES
from app.teams.context import require

bp = Blueprint("api_keys", __name__, url_prefix="/api-keys")
PERMISSION = "manage_api_keys"
API_REFERENCE = "/api/v1/docs"
ROLE_OPTIONS = [(role, ROLE_LABELS[role]) for role in ROLES]


def _render(status=200, new_key=None, raw_key=None, form=None, problem=None):
    template = "api/_keys.html" if is_htmx() else "api/keys.html"
    response = make_response(render_template(
        template, api_keys=keys.team_keys(g.team), new_key=new_key, raw_key=raw_key, form=form or {},
        error=problem.message if problem else None, errors=problem.errors if problem else {},
        role_options=ROLE_OPTIONS, api_reference=API_REFERENCE), status)
    # The answer to a create holds the only copy of the key: no cache may keep it.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/")
@require(PERMISSION)
def index():
    return _render()


@bp.route("/new", methods=["POST"])
@require(PERMISSION)
def create():
    try:
        key, raw_key = keys.create_key(g.team, name=request.form.get("name"), role=request.form.get("role"),
                                       created_by=current_user.id)
    except keys.ApiKeyError as exc:
        return _render(422, form=request.form, problem=exc)
    return _render(new_key=key, raw_key=raw_key)


@bp.route("/<int:key_id>/revoke", methods=["POST"])
@require(PERMISSION)
def revoke(key_id):
    try:
        key = keys.revoke_key(g.team, key_id, revoked_by=current_user.id)
    except keys.ApiKeyNotFound:
        abort(404)
    flash(f"Key “{key.name}” revoked: requests made with it are refused from now on.", "success")
    return redirect(url_for("api_keys.index"))
