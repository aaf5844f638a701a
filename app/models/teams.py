"""People, teams and the instance: users and their sign-in records, teams, memberships,
invites, instance settings and the local mail catcher's messages."""
from peewee import BlobField
from peewee import BooleanField
from peewee import CharField
from peewee import DateTimeField
from peewee import FloatField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import TextField

from app.db import BaseModel
from app.db import JSONField
from app.models.common import new_token
from app.models.common import utcnow


ROLES = ("admin", "manager", "author", "guest")
ROLE_LABELS = {"admin": "Administrator", "manager": "Manager", "author": "Author", "guest": "Guest"}


class User(BaseModel):
    email = CharField(unique=True)  # stored lower-cased
    name = CharField(default="")
    password_hash = CharField()
    # flask-login's id: a random token, rotated on password change, so that
    # changing the password signs out every other session and a reused rowid
    # can never resurrect an old cookie.
    session_token = CharField(unique=True, default=new_token)
    is_instance_admin = BooleanField(default=False)
    totp_secret = TextField(null=True)  # encrypted; set once 2FA is confirmed
    totp_last_step = IntegerField(default=0)  # refuses replay of a used code
    current_team_id = IntegerField(null=True)
    created_at = DateTimeField(default=utcnow)
    last_login_at = DateTimeField(null=True)

    # flask-login protocol
    is_active = True
    is_authenticated = True
    is_anonymous = False

    def get_id(self):
        return self.session_token

    @property
    def has_2fa(self):
        return bool(self.totp_secret)


class RecoveryCode(BaseModel):
    user = ForeignKeyField(User, backref="recovery_codes", on_delete="CASCADE")
    code_hash = CharField()
    used_at = DateTimeField(null=True)


class PasswordReset(BaseModel):
    user = ForeignKeyField(User, backref="password_resets", on_delete="CASCADE")
    token_hash = CharField(unique=True)
    expires_at = DateTimeField()
    used_at = DateTimeField(null=True)


class LoginFailure(BaseModel):
    """One failed sign-in (or second factor, "2fa:<address>"), or one request for a password-reset link
    ("reset:<address>"); the throttles count recent rows per address and per IP."""
    email = CharField(index=True)
    ip = CharField(index=True)
    at = DateTimeField(default=utcnow, index=True)


class Team(BaseModel):
    name = CharField()
    time_zone = CharField(default="UTC")
    default_from_name = CharField(default="")
    default_from_email = CharField(default="")
    postal_address = TextField(default="")  # printed in every campaign footer (CAN-SPAM)
    created_at = DateTimeField(default=utcnow)
    # AI writing help (migration 0047): an instance administrator's switch, and the team's own monthly
    # budget in US dollars (None = the instance default, app.ai.costs.budget_usd).
    ai_enabled = BooleanField(default=True)
    ai_monthly_budget_usd = FloatField(null=True)
    # Address validation at import (migration 0060): one of app/imports/screening.py's POLICIES.
    import_validation = CharField(default="off")
    # Standing and billing (migration 0065, app/teams/standing.py, app/billing/): an instance administrator's
    # suspension (nothing leaves for the team while suspended_at is set), the monthly email cap (None = none)
    # and the instance plan the team is billed on ("" = the default plan).
    suspended_at = DateTimeField(null=True)
    suspended_reason = TextField(default="")
    suspended_by_id = IntegerField(null=True)
    monthly_email_cap = IntegerField(null=True)
    billing_plan = CharField(default="")


class Membership(BaseModel):
    user = ForeignKeyField(User, backref="memberships", on_delete="CASCADE")
    team = ForeignKeyField(Team, backref="memberships", on_delete="CASCADE")
    role = CharField()  # one of ROLES
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("user", "team"), True),)

    @property
    def role_label(self):
        return ROLE_LABELS[self.role]


class Invite(BaseModel):
    team = ForeignKeyField(Team, backref="invites", on_delete="CASCADE")
    email = CharField()
    role = CharField()
    token_hash = CharField(unique=True)
    invited_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField()
    accepted_at = DateTimeField(null=True)


class InstanceSetting(BaseModel):
    """Instance-wide settings edited in the UI (base URL, sender, outbound SMTP)."""
    key = CharField(unique=True)
    value = JSONField(empty=None)  # any JSON value


class CaughtMessage(BaseModel):
    """A message received by the local mail catcher, shown in the Outbox."""
    received_at = DateTimeField(default=utcnow, index=True)
    mail_from = CharField()
    recipients = JSONField(empty=list)
    subject = TextField(default="")
    size = IntegerField()
    raw = BlobField()
