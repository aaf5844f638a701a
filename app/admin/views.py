"""Instance settings, for the instance administrator (the account made at setup)."""
import functools

from flask import Blueprint
from flask import abort
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user
from flask_login import login_required

from app import settings as instance_settings
from app import usage
from app.admin import ai_settings
from app.admin import console
from app.admin import services
from app.ai import costs
from app.ai import providers
from app.billing import plans
from app.errors import render_problem
from app.htmx import is_htmx
from app.models import Team
from app.teams import standing

bp = Blueprint("admin", __name__, url_prefix="/admin")


def instance_admin_required(view):
    """Only the instance administrator may use `view`; the mark lets the role tests find every such page."""
    @functools.wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user.is_instance_admin:
            abort(403, description="Only the instance administrator can open this page.")
        return view(*args, **kwargs)
    wrapped.instance_admin = True
    return wrapped


@bp.route("/settings", methods=["GET", "POST"])
@instance_admin_required
def settings():
    template = "admin/_settings_form.html" if is_htmx() else "admin/settings.html"
    if request.method == "POST":
        try:
            values = services.validate(request.form)
        except services.SettingsError as exc:
            # has_password as on the GET: the help must still say an empty password keeps the stored one.
            return render_problem(template, exc, tls_modes=services.SMTP_TLS_MODES,
                                  team_creation=services.TEAM_CREATION,
                                  has_password=bool(instance_settings.get_setting("smtp_password")))
        instance_settings.save_settings(values)
        flash("Instance settings saved.", "success")  # shown in the fragment too (app/htmx.py)
        if not is_htmx():
            return redirect(url_for("admin.settings"))
    current = instance_settings.get_settings()
    return render_template(template, form=current, errors={}, tls_modes=services.SMTP_TLS_MODES,
                           team_creation=services.TEAM_CREATION, has_password=bool(current["smtp_password"]))


# --- AI ------------------------------------------------------------------------

def _render_ai(form, errors=None, status=200, **context):
    template = "admin/_ai_form.html" if is_htmx() else "admin/ai.html"
    return render_template(template, form=form, errors=errors or {},
                           provider_choices=[(name, name) for name in providers.names()],
                           default_prices=costs.default_prices(), api_key=ai_settings.key_state(),
                           teams=ai_settings.team_rows(), prompts=ai_settings.prompt_rows(), **context), status


@bp.route("/ai", methods=["GET", "POST"])
@instance_admin_required
def ai():
    if request.method == "GET":
        return _render_ai(ai_settings.form_values())
    form = dict(request.form.items(), prices=ai_settings.submitted_price_rows(request.form))
    if request.form.get("add_price_row"):  # "Add a row": the form again with an empty row, nothing saved
        form["prices"].append({"model": "", "input": "", "output": ""})
        return _render_ai(form)
    try:
        saved = ai_settings.save(request.form)
    except ai_settings.AiSettingsError as exc:
        return _render_ai(form, errors=exc.errors, status=422, error=exc.message)
    flash("AI settings saved.", "success")
    if warning := ai_settings.price_warning(saved):
        flash(warning, "warning")
    if not is_htmx():
        return redirect(url_for("admin.ai"))
    return _render_ai(ai_settings.form_values(), teams_changed=True)  # their budgets may follow the default


@bp.route("/ai/test", methods=["POST"])
@instance_admin_required
def ai_test_connection():
    """Ask the provider for a short answer with the saved settings; a failure is words, never a 500."""
    ok, words = ai_settings.test_connection()
    template = "admin/_ai_test_result.html" if is_htmx() else "admin/ai_test_result.html"
    return render_template(template, ok=ok, words=words), 200 if ok else 422


@bp.route("/ai/teams/<int:team_id>", methods=["POST"])
@instance_admin_required
def ai_team(team_id):
    team = Team.get_or_none(Team.id == team_id) or abort(404)
    try:
        ai_settings.save_team(team, request.form)
    except ai_settings.AiSettingsError as exc:
        if not is_htmx():
            return _render_ai(ai_settings.form_values(), status=422, team_errors={team.id: exc.errors},
                              team_form=request.form)
        row = ai_settings.team_row(Team.get_by_id(team.id))
        return render_template("admin/_ai_team_row.html", row=row, form=request.form, errors=exc.errors), 422
    if not is_htmx():
        flash(f"AI settings of {team.name} saved.", "success")
        return redirect(url_for("admin.ai", _anchor="ai-teams"))
    return render_template("admin/_ai_team_row.html", row=ai_settings.team_row(team), form=None, errors={},
                           saved=True)


# --- The instance console: every team, its members, usage and health; suspend and resume ----------

def _render_team(team, error=None, form=None, status=200):
    return render_template("admin/team.html", row=console.team_row(team), plans=plans.all_plans(),
                           month=usage.month_breakdown(team, usage.month_key(team)),
                           history=console.standing_history(team), error=error, form=form or {}), status


@bp.route("/teams")
@instance_admin_required
def teams():
    data = console.team_page(request.args.get("q", ""), request.args.get("show", "all"), request.args.get("page", 1))
    return render_template("admin/teams.html", show_choices=console.SHOW, **data)


@bp.route("/teams/<int:team_id>")
@instance_admin_required
def team_detail(team_id):
    return _render_team(Team.get_or_none(Team.id == team_id) or abort(404))


@bp.route("/teams/<int:team_id>/suspend", methods=["POST"])
@instance_admin_required
def team_suspend(team_id):
    team = Team.get_or_none(Team.id == team_id) or abort(404)
    try:
        paused = console.suspend(team, request.form.get("reason", ""), current_user)
    except standing.StandingError as exc:
        return _render_team(team, error=str(exc), form=request.form, status=422)
    flash(f"{team.name} is suspended: nothing is sent for it until you resume it"
          + (f"; {len(paused)} sending campaign{'s' if len(paused) != 1 else ''} paused." if paused else "."),
          "success")
    return redirect(url_for("admin.team_detail", team_id=team.id))


@bp.route("/teams/<int:team_id>/resume", methods=["POST"])
@instance_admin_required
def team_resume(team_id):
    team = Team.get_or_none(Team.id == team_id) or abort(404)
    console.resume(team, current_user)
    flash(f"{team.name} may send again. Campaigns the suspension paused stay paused until the team resumes them.",
          "success")
    return redirect(url_for("admin.team_detail", team_id=team.id))
