"""Outgoing webhooks and in-app notices.

webhook_endpoint   a team's URL that receives JSON events (sent, bounced, opened, ...), signed with its secret.
webhook_delivery   one event for one endpoint: pending until a 2xx answer, retried with backoff, then failed.
                   Unique per (endpoint, event) so a dispatch that runs twice never delivers twice.
webhook_cursor     the highest Event id the dispatcher has turned into deliveries (outbox pattern).
notice             an in-app alert for a team (auto-pause, authentication failure, ...); its email to the
                   Administrators leaves from a periodic task (emailed_at), never inside the caller's transaction.
"""
import datetime

from peewee import BooleanField
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import Model
from peewee import TextField


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Team(Base):
        class Meta:
            table_name = "team"

    now = datetime.datetime.utcnow

    class WebhookEndpoint(Base):
        team = ForeignKeyField(Team, on_delete="CASCADE")
        url = TextField()
        description = CharField(default="")
        event_types = TextField(default="[]")
        secret = TextField(default="")
        enabled = BooleanField(default=True)
        created_at = DateTimeField(default=now)

    class WebhookDelivery(Base):
        endpoint = ForeignKeyField(WebhookEndpoint, on_delete="CASCADE")
        event_id = IntegerField()
        event_type = CharField()
        payload = TextField()
        status = CharField(default="pending")
        attempts = IntegerField(default=0)
        next_attempt_at = DateTimeField(null=True)
        last_status_code = IntegerField(null=True)
        last_error = TextField(default="")
        response_excerpt = TextField(default="")
        created_at = DateTimeField(default=now)
        delivered_at = DateTimeField(null=True)

        class Meta:
            indexes = (
                (("endpoint", "event_id"), True),
                (("status", "next_attempt_at"), False),
                (("endpoint", "id"), False),
            )

    class WebhookCursor(Base):
        name = CharField(unique=True)
        last_event_id = IntegerField(default=0)

    class Notice(Base):
        team = ForeignKeyField(Team, on_delete="CASCADE")
        kind = CharField(default="alert")
        subject = TextField()
        text = TextField(default="")
        campaign_id = IntegerField(null=True)
        data = TextField(default="{}")
        created_at = DateTimeField(default=now)
        read_at = DateTimeField(null=True)
        dismissed_at = DateTimeField(null=True)
        emailed_at = DateTimeField(null=True)

        class Meta:
            indexes = (
                (("team", "dismissed_at", "id"), False),
                (("campaign_id", "kind"), False),
                (("emailed_at",), False),
            )

    db.create_tables([WebhookEndpoint, WebhookDelivery, WebhookCursor, Notice])


def down(migrator, db):
    for table in ("notice", "webhook_cursor", "webhook_delivery", "webhook_endpoint"):
        db.execute_sql(f'DROP TABLE IF EXISTS "{table}"')
