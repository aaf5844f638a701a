"""Feedback intake: bounce mailboxes and provider webhooks."""
from peewee import BooleanField
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import TextField

from app.db import BaseModel
from app.db import JSONField
from app.models.campaigns import SmtpAccount
from app.models.common import new_token
from app.models.common import utcnow
from app.models.teams import Team


class BounceMailbox(BaseModel):
    """An IMAP mailbox where bounces and complaints arrive (usually the SMTP account's own inbox).

    Messages with a UID above last_uid (within uid_validity) have not been looked at yet; bounces,
    complaints and auto-replies are moved to processed_folder, other mail is left where it is.
    """
    team = ForeignKeyField(Team, on_delete="CASCADE")
    smtp_account = ForeignKeyField(SmtpAccount, null=True, on_delete="SET NULL")
    name = CharField(default="")
    preset = CharField(default="generic")  # icloud, generic
    host = CharField()
    port = IntegerField(default=993)
    security = CharField(default="ssl")  # ssl, starttls, none (loopback only)
    username = CharField(default="")
    password = TextField(default="")  # encrypted with app.security.encrypt
    folder = CharField(default="INBOX")
    processed_folder = CharField(default="Loft/Processed")
    enabled = BooleanField(default=True)
    uid_validity = IntegerField(default=0)
    last_uid = IntegerField(default=0)
    last_checked_at = DateTimeField(null=True)
    last_error = TextField(default="")
    last_summary = JSONField()  # counts of the last check
    created_at = DateTimeField(default=utcnow)


class ProviderHook(BaseModel):
    """A provider's bounce/complaint webhook for one team: /feedback/hooks/<provider>/<token>."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    provider = CharField()  # ses, sendgrid, postmark, mailgun, generic
    token = CharField(unique=True, default=new_token)  # the secret part of the URL
    secret = TextField(default="")  # encrypted: Mailgun signing key, SendGrid public key, Postmark or generic secret
    username = CharField(default="")  # Postmark basic-auth user name
    created_at = DateTimeField(default=utcnow)
    last_received_at = DateTimeField(null=True)
    received_count = IntegerField(default=0)
    last_error = TextField(default="")

    class Meta:
        indexes = ((("team", "provider"), True),)


class HookNonce(BaseModel):
    """A signature token a webhook already used (Mailgun token, generic signature): replays are refused."""
    hook = ForeignKeyField(ProviderHook, on_delete="CASCADE")
    nonce = CharField()
    at = DateTimeField(default=utcnow, index=True)

    class Meta:
        indexes = ((("hook", "nonce"), True),)
