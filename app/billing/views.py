"""The billing pages: the team's meter and CSV statements (permission manage_billing), and the instance
administrator's plans, each team's plan and monthly cap (Admin > Billing). Thin: app/billing/ holds the work."""
from flask import Blueprint
from flask import Response
from flask import abort
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from app import usage
from app.admin.views import instance_admin_required
from app.billing import meter as billing_meter
from app.billing import plans
from app.models import Team
from app.reports import charts
from app.security import attachment
from app.teams import standing
from app.teams.context import require

bp = Blueprint("billing", __name__)
MAX_PLAN_ROWS = plans.MAX_PLANS


@bp.route("/billing", endpoint="meter")
@require("manage_billing")
def meter_page():
    data = billing_meter.meter(g.team)
    history = data["history"]
    chart = charts.bar_chart("Emails sent per month", [month for month, _total, _amount in history],
                             [("Emails sent", [total for _month, total, _amount in history])])
    return render_template("billing/meter.html", meter=data, chart=chart,
                           ever_sent=any(total for _month, total, _amount in history) or bool(data["statement_months"]))


@bp.route("/billing/statements/<month>.csv", endpoint="statement")
@require("manage_billing")
def statement(month):
    """A month's statement: only a month of this team's (with usage, or the current one), else 404."""
    month = billing_meter.valid_month(month)
    if month is None or (month != usage.month_key(g.team) and month not in usage.months_with_usage(g.team)):
        abort(404)
    return Response(billing_meter.statement_csv(g.team, month), mimetype="text/csv", headers={
        "Content-Disposition": attachment(billing_meter.statement_filename(g.team, month)),
        "Cache-Control": "no-store"})


# --- Instance administrator ---------------------------------------------------------------------------

def _plan_rows(form):
    rows = []
    for index in range(1, MAX_PLAN_ROWS + 2):
        if f"key-{index}" not in form:
            break
        rows.append({field: form.get(f"{field}-{index}", "")
                     for field in ("key", "name", "free_emails", "price_per_thousand", "currency")})
    return rows


def _render_admin(rows=None, default_key=None, error=None, field=None, status=200):
    saved = plans.all_plans()
    if rows is None:
        rows = [plan.as_setting() for plan in saved]
    rows = rows + [{"key": "", "name": "", "free_emails": "", "price_per_thousand": "", "currency": "USD"}]
    teams = list(Team.select().order_by(Team.name, Team.id))
    return render_template("billing/admin.html", rows=rows, plans=saved,
                           default_key=default_key or plans.default_plan().key, teams=teams,
                           sent={team.id: usage.sent_this_month(team) for team in teams},
                           error=error, field=field), status


@bp.route("/admin/billing", methods=["GET", "POST"], endpoint="admin")
@instance_admin_required
def admin_page():
    if request.method == "GET":
        return _render_admin()
    rows = _plan_rows(request.form)
    try:
        plans.save_plans(rows, request.form.get("default_plan", ""))
    except plans.PlanError as exc:
        return _render_admin(rows[:], request.form.get("default_plan"), exc.message, exc.field, 422)
    flash("Plans saved.", "success")
    return redirect(url_for("billing.admin"))


@bp.route("/admin/billing/teams/<int:team_id>", methods=["POST"], endpoint="team")
@instance_admin_required
def team_settings(team_id):
    """A team's plan and monthly cap (the form of templates/billing/_team_form.html, which the instance console
    can include too)."""
    team = Team.get_or_none(Team.id == team_id)
    if team is None:
        abort(404)
    key = request.form.get("plan", "")
    if key and key not in {plan.key for plan in plans.all_plans()}:
        flash("Choose one of the plans listed.", "error")
        return redirect(request.form.get("next") if _safe_next() else url_for("billing.admin"))
    try:
        standing.set_cap(team, request.form.get("monthly_email_cap", ""))
    except standing.StandingError as exc:
        flash(f"{team.name}: {exc}", "error")
        return redirect(request.form.get("next") if _safe_next() else url_for("billing.admin"))
    Team.update(billing_plan=key).where(Team.id == team.id).execute()
    cap = team.monthly_email_cap
    flash(f"{team.name}: plan and monthly limit saved"
          + (f" ({cap:,} emails a month)." if cap is not None else " (no limit)."), "success")
    return redirect(request.form.get("next") if _safe_next() else url_for("billing.admin") + f"#team-{team.id}")


def _safe_next():
    """A `next` that stays on this site (a path, not //host or a scheme)."""
    target = request.form.get("next", "")
    return target.startswith("/") and not target.startswith("//") and "\\" not in target
