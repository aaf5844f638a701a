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
from app.admin import services
from app.errors import render_problem
from app.htmx import is_htmx

bp = Blueprint("admin", __name__, url_prefix="/admin")


def instance_admin_required(view):
    @functools.wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user.is_instance_admin:
            abort(403, description="Only the instance administrator can open this page.")
        return view(*args, **kwargs)
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
