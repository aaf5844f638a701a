"""The notices page and the bell in the layout.

Every member of a team sees its notices ("view"): an auto-paused campaign or a
failed authentication concerns everyone who works on the team's campaigns.
Opening the page marks them read; dismissing hides them. Each person sees only the kinds they want in the
app, and chooses them, with what reaches them by email, on /notices/preferences (app/notices/preferences.py).
"""
from flask import Blueprint
from flask import abort
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user

from app.notices import alerts
from app.notices import preferences
from app.htmx import is_htmx
from app.teams import services as teams
from app.teams.context import require

bp = Blueprint("notices", __name__, url_prefix="/notices")


@bp.app_context_processor
def notices_context():
    # A function, so the count query runs only where the layout shows the bell (signed in, with a team).
    return {"unread_notices": lambda: alerts.unread_count(g.get("team"), *_me())}


def _me():
    """(the signed-in person, their role in the current team): their preferences narrow the notices."""
    membership = g.get("membership")
    return (current_user.id, membership.role) if membership is not None else (None, None)


@bp.route("/")
@require("view")
def index():
    notices = alerts.active(g.team, current_user.id, role=g.membership.role)
    unread = {n.id for n in notices if n.read_at is None}
    alerts.mark_read(g.team, current_user.id, role=g.membership.role)
    return render_template("notices/index.html", notices=notices, unread=unread)


@bp.route("/<int:notice_id>/dismiss", methods=["POST"])
@require("view")
def dismiss(notice_id):
    if alerts.get_notice(g.team, notice_id) is None:
        abort(404)
    alerts.dismiss(g.team, notice_id)
    if is_htmx():
        return ""  # the notice is removed in place
    flash("Notice dismissed.", "success")
    return redirect(url_for("notices.index"))


@bp.route("/dismiss-all", methods=["POST"])
@require("view")
def dismiss_all():
    count = alerts.dismiss_all(g.team)
    flash(f"{count} notice{'s' if count != 1 else ''} dismissed." if count else "Nothing to dismiss.", "success")
    return redirect(url_for("notices.index"))


@bp.route("/preferences", methods=["GET", "POST"])
@require("view")
def preferences_page():
    """A person's own choices for one of their teams (the current one, or ?team=<id>, which the notice emails link
    to: a team they are not in is not found): event x {email, in the app}, saved with one POST."""
    membership = g.membership
    if request.args.get("team", type=int) not in (None, g.team.id):
        membership = teams.membership(current_user, request.args.get("team", type=int)) or abort(404)
    team, role = membership.team, membership.role
    here = url_for("notices.preferences_page", team=team.id if team.id != g.team.id else None)
    if request.method == "POST":
        preferences.save(current_user.id, team, request.form, role=role)
        flash(f"Notification preferences for {team.name} saved.", "success")
        return redirect(here)
    return render_template("notices/preferences.html", events=preferences.EVENTS.values(), team=team,
                           membership=membership, action=here,
                           choices=preferences.choices(current_user.id, team, role=role),
                           defaults=preferences.defaults(role), field_name=preferences.field_name)
