"""What every module of the contacts area shares: the refusal a form shows, a missing list or
segment, and the audit record of an editor's act."""

from app.errors import Problem
from app.models import AuditLog


class ContactError(Problem):
    """A refusal with a message for the person; `errors` maps form fields to messages."""


class NotFound(LookupError):
    """A list or segment named in a filter is not one of the team's."""


def audit(team, user, what, target="", **data):
    return AuditLog.create(team=team, user=getattr(user, "id", None), action=what, target=target,
                           data=data)

