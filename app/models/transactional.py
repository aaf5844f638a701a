"""Transactional email: one message to one recipient (a receipt, a password reset), and its status history."""
import enum

from peewee import BlobField
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import TextField

from app.db import BaseModel
from app.db import JSONField
from app.models.api import ApiKey
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


TX_STATUSES = tuple(TxStatus)


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

    class Meta:
        indexes = (
            (("team", "id"), False),
            (("team", "status", "id"), False),
            (("status", "created_at"), False),  # the sweep for messages left queued
        )


class TxEvent(BaseModel):
    """One step of a TxMessage's status history, oldest first."""
    tx_message = ForeignKeyField(TxMessage, backref="events", on_delete="CASCADE")
    status = CharField()  # a TxStatus value
    at = DateTimeField(default=utcnow)
    detail = TextField(default="")  # the SMTP reply, the error, the bounce's reason
