"""Outgoing webhooks and in-app notices."""
from peewee import BooleanField
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import TextField

from app.db import BaseModel
from app.db import JSONField
from app.models.common import utcnow
from app.models.teams import Team


WEBHOOK_EVENT_TYPES = ("sent", "delivered", "bounced", "opened", "clicked", "unsubscribed", "complained",
                       "tx_sent", "tx_failed", "tx_bounced", "tx_opened", "tx_clicked")
WEBHOOK_DELIVERY_STATUSES = ("pending", "delivered", "failed")


class WebhookEndpoint(BaseModel):
    """A team's URL that receives signed JSON events of the chosen types."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    url = TextField()
    description = CharField(default="")
    event_types = JSONField(empty=list)  # a subset of WEBHOOK_EVENT_TYPES
    secret = TextField(default="")  # encrypted with app.security.encrypt; signs every request
    enabled = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)


class WebhookDelivery(BaseModel):
    """One event for one endpoint; pending until a 2xx answer, retried with backoff, then failed."""
    endpoint = ForeignKeyField(WebhookEndpoint, on_delete="CASCADE")
    event_id = IntegerField()
    event_type = CharField()
    payload = TextField()  # the exact JSON body sent (signed as is)
    status = CharField(default="pending")  # one of WEBHOOK_DELIVERY_STATUSES
    attempts = IntegerField(default=0)
    next_attempt_at = DateTimeField(null=True)
    last_status_code = IntegerField(null=True)
    last_error = TextField(default="")
    response_excerpt = TextField(default="")
    created_at = DateTimeField(default=utcnow)
    delivered_at = DateTimeField(null=True)

    class Meta:
        indexes = (
            (("endpoint", "event_id"), True),
            (("status", "next_attempt_at"), False),
            (("endpoint", "id"), False),
        )


class WebhookCursor(BaseModel):
    """The highest Event id a consumer has processed (outbox pattern); one row per consumer name."""
    name = CharField(unique=True)
    last_event_id = IntegerField(default=0)


class Notice(BaseModel):
    """An in-app alert for a team; its email to the Administrators leaves from a periodic task."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    kind = CharField(default="alert")  # alert, autopause, mailbox, ...
    subject = TextField()
    text = TextField(default="")
    campaign_id = IntegerField(null=True)
    data = JSONField()  # e.g. the rates an auto-pause saw
    created_at = DateTimeField(default=utcnow)
    read_at = DateTimeField(null=True)
    dismissed_at = DateTimeField(null=True)
    emailed_at = DateTimeField(null=True)

    class Meta:
        indexes = (
            (("team", "dismissed_at", "id"), False),
            (("campaign_id", "kind"), False),
            (("emailed_at",), False),
        )
