"""The notices page and the bell in the layout.

Every member of a team sees its notices ("view"): an auto-paused campaign or a
failed authentication concerns everyone who works on the team's campaigns.
Opening the page marks them read; dismissing hides them.
"""
from flask import Blueprint
from flask import abort
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import url_for

from app.notices import alerts
from app.htmx import is_htmx
from app.teams.context import require

bp = Blueprint("notices", __name__, url_prefix="/notices")


@bp.app_context_processor
def notices_context():
    # A function, so the count query runs only where the layout shows the bell (signed in, with a team).
    return {"unread_notices": lambda: alerts.unread_count(g.get("team"))}


@bp.route("/")
@require("view")
def index():
    notices = alerts.active(g.team)
    unread = {n.id for n in notices if n.read_at is None}
    alerts.mark_read(g.team)
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
