"""Transactional email: one message to one recipient (a receipt, a password reset), and its status history."""
import enum

from peewee import BlobField
from peewee import BooleanField
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import TextField

from app.db import BaseModel
from app.db import JSONField
from app.models.api import ApiKey
from app.models.campaigns import SmtpAccount
from app.models.campaigns import Template
from app.models.common import utcnow
from app.models.teams import Team


class TxStatus(enum.StrEnum):
    """TxMessage.status and TxEvent.status; the values are the stored strings."""
    QUEUED = "queued"
    SENT = "sent"  # the team's SMTP server accepted it (its reply is in the TxEvent's detail)
    DELIVERED = "delivered"  # a provider (SES, SendGrid, ... webhooks) reported it delivered
    FAILED = "failed"  # refused for good, or every retry used up
    BOUNCED = "bounced"  # a bounce report came back for it after it was sent
    # Steps of the history only (TxEvent.status), never a TxMessage.status: an open or a click does not
    # change whether the message was delivered.
    OPENED = "opened"  # the first open of a message with track_opens
    CLICKED = "clicked"  # the first click on each tracked link


TX_STATUSES = tuple(status for status in TxStatus if status not in (TxStatus.OPENED, TxStatus.CLICKED))


class TxMessage(BaseModel):
    """One transactional message. The recipient is an address, not a Contact: a receipt's buyer has not
    joined the team's audience. `raw` is the message as built when it was accepted (unsigned: the DKIM
    signature is added when it goes out, with the domain's key of that moment)."""
    team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
    api_key = ForeignKeyField(ApiKey, null=True, on_delete="SET NULL")
    template = ForeignKeyField(Template, null=True, on_delete="SET NULL")
    from_email = CharField()
    from_name = CharField(default="")
    reply_to = CharField(default="")
    to_email = CharField()
    subject = TextField(default="")
    tags = JSONField(empty=list)
    status = CharField(default=TxStatus.QUEUED)
    message_id = CharField(index=True)  # without the angle brackets; a bounce report names it
    raw = BlobField()
    size = IntegerField(default=0)  # bytes of raw
    attempts = IntegerField(default=0)
    error = TextField(default="")  # why it failed or bounced, in the server's words
    created_at = DateTimeField(default=utcnow)
    sent_at = DateTimeField(null=True)
    # Migration 0057: tracking, asked for per message; the tracked links' URLs (a click link names one by
    # its place, 1, 2, ...); the first open and click, and how many were recorded.
    track_opens = BooleanField(default=False)
    track_clicks = BooleanField(default=False)
    links = JSONField(empty=list)
    opened_at = DateTimeField(null=True)
    clicked_at = DateTimeField(null=True)
    opens = IntegerField(default=0)
    clicks = IntegerField(default=0)
    # The account it went out through (its hourly and daily caps count it), and why a queued message waits.
    smtp_account = ForeignKeyField(SmtpAccount, null=True, on_delete="SET NULL", index=False)
    waiting = TextField(default="")
    waited_at = DateTimeField(null=True)  # when it last found its account paused or at a cap

    class Meta:
        indexes = (
            (("team", "id"), False),
            (("smtp_account", "sent_at"), False),  # the per-account hourly and daily counts
            (("team", "status", "id"), False),
            (("status", "created_at"), False),  # the sweep for messages left queued
        )


class TxEvent(BaseModel):
    """One step of a TxMessage's status history, oldest first."""
    tx_message = ForeignKeyField(TxMessage, backref="events", on_delete="CASCADE")
    status = CharField()  # a TxStatus value
    at = DateTimeField(default=utcnow)
    detail = TextField(default="")  # the SMTP reply, the error, the bounce's reason
