"""Teams: switcher, create, settings, members, invitations."""
from flask import Blueprint
from flask import abort
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user
from flask_login import login_required
from flask_login import login_user

from app import system_mail
from app.errors import render_problem
from app.htmx import is_htmx
from app.imports import screening
from app.models import Membership
from app.models import ROLE_LABELS
from app.models import ROLES
from app.security import safe_next
from app.senders import domains
from app.teams import services
from app.teams.context import require
from app.teams.context import team_object_or_404
from app.teams.permissions import can
from app.teams.services import TeamError
from tasks.system_mail import send_system_email

bp = Blueprint("teams", __name__, url_prefix="/teams")


@bp.route("/")
@login_required
def list_teams():
    return render_template("teams/list.html", teams=services.teams_of(current_user))


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new_team():
    if not services.may_create_teams(current_user):
        return render_template("teams/new.html", refused=services.creation_refused(), form={}), 403
    if request.method == "POST":
        try:
            team = services.create_team(current_user, request.form.get("name", ""))
        except TeamError as exc:
            return render_problem("teams/new.html", exc)
        services.switch_team(current_user, team.id)
        flash(f"Team “{team.name}” created. You are its Administrator.", "success")
        return redirect(url_for("dashboard.dashboard"))
    return render_template("teams/new.html", form={})


@bp.route("/switch", methods=["POST"])
@login_required
def switch():
    try:
        team = services.switch_team(current_user, request.form.get("team_id", type=int))
    except TeamError:
        abort(404)
    flash(f"Now working in “{team.name}”.", "info")
    return redirect(safe_next(request.form.get("next"), url_for("dashboard.dashboard")))


@bp.route("/settings", methods=["GET", "POST"])
@require("manage_settings")
def settings():
    if request.method == "POST":
        try:
            services.update_team(g.team, request.form)
        except TeamError as exc:
            return _render_settings(error=exc.message, errors=exc.errors, form=request.form), 422
        flash("Team settings saved.", "success")
        if warning := domains.sender_warning(g.team):
            flash(warning, "warning")
        if is_htmx():
            # The fresh form, with the header's team switcher out of band: the name may have changed.
            return _render_settings(form=g.team.__data__, saved=True)  # update_team saved g.team
        return redirect(url_for("teams.settings"))
    return _render_settings(form=g.team.__data__)


def _render_settings(**context):
    template = "teams/_settings_form.html" if is_htmx() else "teams/settings.html"
    return render_template(template, time_zones=sorted(services.available_time_zones()),
                           import_policies=screening.POLICIES, **context)


# --- Members ----------------------------------------------------------------

def _render_members(status=200, **context):
    template = "teams/_members.html" if is_htmx() else "teams/members.html"
    return render_template(template, members=services.members(g.team), invites=services.pending_invites(g.team),
                           roles=ROLES, form=context.pop("form", {}), **context), status


def _members_outcome(status=200, error=None, notice=None):
    """The answer to a member action: the refreshed list for htmx; for a plain form post (the "Leave team"
    button, or no JavaScript) a redirect to the members page with the message there, never an error page
    left at the action's POST URL."""
    if is_htmx():
        return _render_members(status, error=error, notice=notice)
    flash(error or notice, "error" if error else "success")
    return redirect(url_for("teams.members"), 303)


@bp.route("/members")
@require("view")
def members():
    return _render_members()


@bp.route("/members/invite", methods=["POST"])
@require("manage_members")
def invite():
    try:
        invite, token, earlier = services.create_invite(g.membership, request.form.get("email", ""),
                                                        request.form.get("role", ""))
    except TeamError as exc:
        return _render_members(422, error=exc.message, errors=exc.errors, form=request.form)
    message = system_mail.compose("invite", invite.email, f"You are invited to {g.team.name} on Loft",
                           token=token, team=g.team, inviter=current_user, invite=invite)
    send_system_email(**message)
    notice = f"Invitation sent to {invite.email} as {ROLE_LABELS[invite.role]}."
    if earlier is not None and earlier.role != invite.role:
        notice = (f"{invite.email} already had a pending invitation as {ROLE_LABELS[earlier.role]}: it is replaced "
                  f"by this one as {ROLE_LABELS[invite.role]}, and a new email was sent (the earlier link no "
                  "longer works).")
    elif earlier is not None:
        notice = (f"Invitation sent again to {invite.email} as {ROLE_LABELS[invite.role]} "
                  "(the earlier link no longer works).")
    return _render_members(notice=notice)


@bp.route("/members/<int:member_id>/role", methods=["POST"])
@require("manage_members")
def change_role(member_id):
    member = team_object_or_404(Membership, member_id)
    try:
        services.change_role(g.membership, member, request.form.get("role", ""))
    except TeamError as exc:
        return _members_outcome(422, error=str(exc))
    return _members_outcome(notice=f"{member.user.email} is now {member.role_label}.")


@bp.route("/members/<int:member_id>/remove", methods=["POST"])
@require("view")
def remove_member(member_id):
    """Remove a member; anyone may remove themselves (leave), managing others needs manage_members."""
    member = team_object_or_404(Membership, member_id)
    leaving = member.id == g.membership.id
    if not leaving and not can(g.membership.role, "manage_members"):
        abort(403, description="Your role does not allow removing members.")
    try:
        services.remove_member(g.membership if not leaving else member, member)
    except TeamError as exc:
        return _members_outcome(422, error=str(exc))
    if leaving:
        flash(f"You left “{g.team.name}”.", "info")
        return redirect(url_for("dashboard.dashboard"))
    return _members_outcome(notice=f"{member.user.email} was removed from the team.")


@bp.route("/invites/<int:invite_id>/revoke", methods=["POST"])
@require("manage_members")
def revoke_invite(invite_id):
    if not services.revoke_invite(g.team, invite_id):
        abort(404)
    return _members_outcome(notice="Invitation withdrawn.")


@bp.route("/join/<token>", methods=["GET", "POST"])
def accept(token):
    """The link in an invitation email: join as the signed-in user, or create the account."""
    try:
        invite = services.invite_for_token(token)
    except TeamError as exc:
        return render_template("teams/accept.html", invalid=str(exc)), 410
    if request.method == "POST":
        try:
            if current_user.is_authenticated:
                team = services.accept_invite(token, current_user)
            else:
                if request.form.get("password") != request.form.get("password_confirm"):
                    raise TeamError("The two passwords differ.", field="password_confirm")
                user = services.accept_invite_as_new_user(token, request.form.get("name", ""),
                                                          request.form.get("password", ""))
                login_user(user)
                team = invite.team
        except TeamError as exc:
            # has_account as on the GET: an address that already has an account is told to sign in.
            return render_problem("teams/accept.html", exc, invite=invite,
                                  has_account=services.account_exists(invite.email))
        flash(f"Welcome to “{team.name}”.", "success")
        return redirect(url_for("dashboard.dashboard"))
    has_account = services.account_exists(invite.email)
    return render_template("teams/accept.html", invite=invite, has_account=has_account, form={})
