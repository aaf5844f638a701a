"""Teams, memberships and invitations.

Invariant: every team always has at least one Administrator. Every change
that could break it (role change, removal, leaving) checks inside the same
transaction that makes the change.
"""
import datetime
import secrets
import zoneinfo

from flask import current_app

from app import security
from app import settings
from app.addresses import one_line
from app.auth.services import AuthError
from app.auth.services import create_user
from app.auth.services import normalise_email
from app.consent import ratelimit
from app.db import db
from app.errors import Problem
from app.imports import screening
from app.models import ROLES
from app.models import Invite
from app.models import Membership
from app.models import Team
from app.models import User
from app.models import utcnow


class TeamError(Problem):
    pass


def teams_of(user):
    return (Team.select(Team, Membership.role).join(Membership)
            .where(Membership.user == user).order_by(Team.name).objects())


def membership(user, team_id):
    """The user's membership of a team, or None (not a member: treat as not found)."""
    return (Membership.select(Membership, Team).join(Team)
            .where((Membership.user == user) & (Membership.team == team_id)).get_or_none())


def may_create_teams(user):
    """Whether the instance setting "who may create teams" lets this person make one.

    The creator becomes the new team's Administrator, free to invite anyone and
    to send in the team's name, so the instance administrator decides: anyone,
    only people who already administer a team ("invited", the default: a team's
    Guest cannot make a team of their own), or only the instance administrator.
    """
    if user.is_instance_admin:
        return True
    rule = settings.get_setting("team_creation")
    if rule == "anyone":
        return True
    if rule == "invited":
        return Membership.select().where((Membership.user == user) & (Membership.role == "admin")).exists()
    return False


def creation_refused():
    """Why this person cannot create a team, in words (by the instance setting)."""
    if settings.get_setting("team_creation") == "invited":
        return ("On this Loft instance, teams are created by the instance administrator and by people who "
                "administer a team. Ask one of them for a team, or ask a team's Administrator to invite you.")
    return ("On this Loft instance, only the instance administrator creates teams. Ask them for a team, "
            "or ask a team's Administrator to invite you.")


def create_team(user, name):
    if not may_create_teams(user):
        raise TeamError(creation_refused())
    name = name.strip()
    if not name:
        raise TeamError("Give the team a name.", field="name")
    if len(name) > 100:
        raise TeamError("Keep the name under 100 characters.", field="name")
    with db.atomic():
        team = Team.create(name=name)
        Membership.create(user=user, team=team, role="admin")
    return team


def switch_team(user, team_id):
    found = membership(user, team_id)
    if found is None:
        raise TeamError("You are not a member of that team.")
    User.update(current_team_id=found.team_id).where(User.id == user.id).execute()
    return found.team


def current_membership(user):
    """The membership for the user's current team, falling back to any team they belong to."""
    found = membership(user, user.current_team_id) if user.current_team_id else None
    if found is None:
        found = (Membership.select(Membership, Team).join(Team)
                 .where(Membership.user == user).order_by(Membership.id).first())
        if found is not None:
            User.update(current_team_id=found.team_id).where(User.id == user.id).execute()
    return found


def update_team(team, form):
    name = form.get("name", "").strip()
    if not name:
        raise TeamError("Give the team a name.", field="name")
    from_email = form.get("default_from_email", "").strip()
    if from_email:
        try:
            from_email = normalise_email(from_email)
        except AuthError as exc:
            raise TeamError(str(exc), field="default_from_email")
    if not one_line(form.get("default_from_name", "")):  # it becomes the From header's name
        raise TeamError("The From name must be one line of text.", field="default_from_name")
    time_zone = form.get("time_zone", "UTC").strip() or "UTC"
    if time_zone not in available_time_zones():
        raise TeamError("Choose a time zone from the list, such as Europe/Berlin.", field="time_zone")
    team.name = name[:100]
    team.default_from_name = form.get("default_from_name", "").strip()[:100]
    team.default_from_email = from_email
    team.postal_address = form.get("postal_address", "").strip()[:500]
    team.time_zone = time_zone
    if "import_validation" in form:  # a form without the choice (an older page, a script) keeps the team's
        policy = screening.check_policy(form.get("import_validation", ""))
        if policy is None:
            raise TeamError("Choose one of the address checks listed for imports.", field="import_validation")
        team.import_validation = policy
    team.save()
    return team


def available_time_zones():
    return zoneinfo.available_timezones() | {"UTC"}


def members(team):
    return (Membership.select(Membership, User).join(User)
            .where(Membership.team == team).order_by(User.email))


def _admin_count(team):
    return Membership.select().where((Membership.team == team) & (Membership.role == "admin")).count()


def _check_role_assignment(actor_role, old_role, new_role):
    if new_role not in ROLES:
        raise TeamError("Choose one of the roles listed.", field="role")
    if actor_role != "admin" and "admin" in (old_role, new_role):
        raise TeamError("Only an Administrator can make or unmake Administrators.", field="role")


def change_role(actor, member, new_role):
    with db.atomic():
        _check_role_assignment(actor.role, member.role, new_role)
        if member.role == "admin" and new_role != "admin" and _admin_count(member.team_id) <= 1:
            raise TeamError("A team needs at least one Administrator. Make someone else an "
                            "Administrator first.", field="role")
        member.role = new_role
        member.save()
    return member


def remove_member(actor, member):
    """Remove member (actor is member itself when leaving)."""
    with db.atomic():
        if actor.role != "admin" and member.role == "admin":
            raise TeamError("Only an Administrator can remove an Administrator.")
        if member.role == "admin" and _admin_count(member.team_id) <= 1:
            if actor.id == member.id:
                raise TeamError("You are this team's only Administrator, so you cannot leave it yet: make "
                                "another member an Administrator first (or invite one).")
            raise TeamError("A team needs at least one Administrator. Make someone else an "
                            "Administrator before removing this one.")
        member.delete_instance()


# --- Invitations ----------------------------------------------------------

def pending_invites(team):
    return (Invite.select().where((Invite.team == team) & Invite.accepted_at.is_null()
                                  & (Invite.expires_at > utcnow())).order_by(Invite.created_at.desc()))


INVITES_PER_HOUR = 50  # per team; invitations go out through the instance's server (app config overrides)


def create_invite(actor, email, role):
    """(invite, token, earlier): a new invite, its secret token (only the hash is stored), and the
    pending invite to the same address it replaces (None if there was none), so the caller can say
    what changed: re-inviting someone must never silently change the role they were offered."""
    try:
        email = normalise_email(email)
    except AuthError as exc:
        raise TeamError(str(exc), field="email")
    _check_role_assignment(actor.role, None, role)
    already = (Membership.select().join(User)
               .where((Membership.team == actor.team_id) & (User.email == email)).exists())
    if already:
        raise TeamError(f"{email} is already a member of this team.", field="email")
    # Invitations are Loft's own mail, sent through the instance's server with the team's name in them:
    # a team may not turn that into a mass mailer.
    limit = int(current_app.config.get("INVITES_PER_HOUR", INVITES_PER_HOUR))
    if not ratelimit.hit("invite", actor.team_id, limit, 3600):
        raise TeamError(f"This team has sent {limit} invitations in the last hour. Try again later.", field="email")
    token = secrets.token_urlsafe(32)
    with db.atomic():
        # A new invite replaces any earlier one to the same address (its link stops working).
        earlier = (pending_invites(actor.team_id).where(Invite.email == email).first())
        Invite.delete().where((Invite.team == actor.team_id) & (Invite.email == email)
                              & Invite.accepted_at.is_null()).execute()
        invite = Invite.create(team=actor.team_id, email=email, role=role, invited_by=actor.user_id,
                               token_hash=security.hash_token(token),
                               expires_at=utcnow() + datetime.timedelta(days=current_app.config["INVITE_DAYS"]))
    return invite, token, earlier


def revoke_invite(team, invite_id):
    return Invite.delete().where((Invite.team == team) & (Invite.id == invite_id)
                                 & Invite.accepted_at.is_null()).execute()


def invite_for_token(token):
    invite = (Invite.select(Invite, Team).join(Team)
              .where(Invite.token_hash == security.hash_token(token)).get_or_none())
    if invite is None or invite.accepted_at is not None or invite.expires_at < utcnow():
        raise TeamError("This invitation has expired or was already used. Ask the team for a new one.")
    return invite


def accept_invite(token, user):
    """Join the invited team with the invited role. The signed-in user's address must match."""
    with db.atomic():
        invite = invite_for_token(token)
        if user.email != invite.email:
            raise TeamError(f"This invitation is for {invite.email}. Sign in with that address to accept it.")
        Invite.update(accepted_at=utcnow()).where(Invite.id == invite.id).execute()
        member, created = Membership.get_or_create(user=user, team=invite.team_id,
                                                   defaults={"role": invite.role})
        User.update(current_team_id=invite.team_id).where(User.id == user.id).execute()
    return invite.team


def accept_invite_as_new_user(token, name, password):
    """Create the invited person's account and join the team in one step."""
    with db.atomic():
        invite = invite_for_token(token)
        try:
            user = create_user(invite.email, password, name)
        except AuthError as exc:
            raise TeamError(str(exc), field=exc.field)
        accept_invite(token, user)
    return user


def account_exists(email):
    return User.select().where(User.email == email).exists()
