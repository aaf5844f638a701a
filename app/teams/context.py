"""The current team of each request, and the permission check views use.

g.membership and g.team are set before every request of a signed-in user.
Objects are always looked up through g.team (team_object_or_404), so another
team's id in a URL is simply not found (404), never a 403 that confirms it exists.
"""
import functools

from flask import abort
from flask import g
from flask import redirect
from flask import request
from flask import url_for
from flask_login import current_user
from flask_login import login_required

from app.teams import services
from app.teams.permissions import can


def load_current_team():
    g.membership = None
    g.team = None
    if current_user.is_authenticated:
        g.membership = services.current_membership(current_user)
        g.team = g.membership.team if g.membership else None


def team_object_or_404(model, object_id=None, **fields):
    """The current team's `model` row with this id (or these field values), else 404.

    The one way a view loads what a URL names: another team's id is simply not found."""
    where = [model.team == g.team] + [getattr(model, name) == value for name, value in fields.items()]
    if object_id is not None:
        where.append(model.id == object_id)
    return model.get_or_none(*where) or abort(404)


def require(permission):
    """login_required, a current team, and a role that grants `permission` (else 403)."""
    def decorator(view):
        @functools.wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if g.membership is None:
                return redirect(url_for("teams.new_team", next=request.path))
            if not can(g.membership.role, permission):
                abort(403, description=f"Your role ({g.membership.role_label}) does not allow this. "
                                       "Ask an Administrator of the team.")
            return view(*args, **kwargs)
        wrapped.permission = permission
        return wrapped
    return decorator


def init_app(app):
    app.before_request(load_current_team)

    @app.context_processor
    def team_context():
        role = g.membership.role if g.get("membership") else None
        return {"current_team": g.get("team"), "current_membership": g.get("membership"),
                "can": lambda permission: bool(role) and can(role, permission),
                "my_teams": lambda: services.teams_of(current_user)}
