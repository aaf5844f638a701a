"""The dashboard: where a signed-in person lands."""
from flask import Blueprint
from flask import redirect
from flask import render_template
from flask import url_for
from flask_login import current_user

from flask import g

from app.auth import services as auth_services
from app.dashboard import services
from app.teams.context import require

bp = Blueprint("dashboard", __name__)


@bp.route("/")
def index():
    if auth_services.needs_setup():
        return redirect(url_for("auth.setup"))
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return redirect(url_for("dashboard.dashboard"))


@bp.route("/dashboard")
@require("view")
def dashboard():
    return render_template("dashboard/dashboard.html", overview=services.overview(g.team),
                           steps=services.next_steps(g.team))
