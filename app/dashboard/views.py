"""The dashboard: where a signed-in person lands, and what tells them how the team is doing."""
from flask import Blueprint
from flask import current_app
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user

from app.auth import services as auth_services
from app.dashboard import services
from app.reports import charts
from app.teams.context import require
from app.teams.permissions import can

bp = Blueprint("dashboard", __name__)


@bp.route("/")
def index():
    if auth_services.needs_setup():
        return redirect(url_for("auth.setup"))
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return redirect(url_for("dashboard.dashboard"))


def _reachable(endpoint, **args):
    """The URL of `endpoint` when the current role may open it, else None (the item is shown without a link)."""
    permission = getattr(current_app.view_functions[endpoint], "permission", None)
    return url_for(endpoint, **args) if permission and can(g.membership.role, permission) else None


@bp.route("/dashboard")
@require("view")
def dashboard():
    days = request.args.get("days", type=int)
    days = days if days in services.GROWTH_PERIODS else services.GROWTH_PERIODS[0]
    growth = services.growth(g.team, days)
    chart = charts.line_chart(f"Contacts who joined and who unsubscribed, running totals over the last {days} days",
                              growth.labels, [("Joined", growth.running(growth.joined)),
                                              ("Unsubscribed", growth.running(growth.left))],
                              description=growth.description())
    recent, best, worst = services.campaign_results(g.team)
    attention = [(item, _reachable(item.endpoint, **item.args)) for item in services.needs_attention(g.team)]
    return render_template("dashboard/dashboard.html", overview=services.overview(g.team), growth=growth,
                           chart=chart, periods=services.GROWTH_PERIODS, recent=recent,
                           best=best, worst=worst, min_delivered=services.MIN_DELIVERED, attention=attention,
                           steps=services.next_steps(g.team))
