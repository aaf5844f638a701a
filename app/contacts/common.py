"""What every module of the contacts area shares: the refusal a form shows, a missing list or
segment, and the audit record of an editor's act."""

from app.models import AuditLog


class ContactError(ValueError):
    """A refusal with a message for the person; `errors` maps form fields to messages."""

    def __init__(self, message=None, field=None, errors=None):
        self.errors = dict(errors or {})
        if field and message:
            self.errors.setdefault(field, message)
        if message is None:
            message = " ".join(self.errors.values())
        super().__init__(message)
        self.field = field or (next(iter(self.errors)) if self.errors else None)


class NotFound(LookupError):
    """A list or segment named in a filter is not one of the team's."""


def audit(team, user, what, target="", **data):
    return AuditLog.create(team=team, user=getattr(user, "id", None), action=what, target=target,
                           data=data)

