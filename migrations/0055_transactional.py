"""Transactional email: single messages sent on their own queue, and their status history.

tx_message               one message to one address: team, the API key that sent it (kept when the key goes),
                         the template it was built from, From / Reply-To / To, subject, tags, status (queued,
                         sent, failed, bounced), Message-ID (a bounce report names it), the built message
                         (raw) and its size, attempts, the last error, when it was accepted and sent.
tx_event                 its status history: status, when, and the detail (the SMTP reply, the error).
smtp_account.transactional  "Use for transactional mail": the account transactional messages go through
                         (else the team's first active account).
"""
import datetime

from peewee import BlobField
from peewee import BooleanField
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import Model
from peewee import TextField

from app.db import IdField
from app.db import JSONField


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Team(Base):
        class Meta:
            table_name = "team"

    class ApiKey(Base):
        class Meta:
            table_name = "api_key"

    class Template(Base):
        class Meta:
            table_name = "template"

    class TxMessage(Base):
        id = IdField()
        team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
        api_key = ForeignKeyField(ApiKey, null=True, on_delete="SET NULL")
        template = ForeignKeyField(Template, null=True, on_delete="SET NULL")
        from_email = CharField()
        from_name = CharField(default="")
        reply_to = CharField(default="")
        to_email = CharField()
        subject = TextField(default="")
        tags = JSONField(empty=list)
        status = CharField(default="queued")
        message_id = CharField(index=True)
        raw = BlobField()
        size = IntegerField(default=0)
        attempts = IntegerField(default=0)
        error = TextField(default="")
        created_at = DateTimeField(default=datetime.datetime.utcnow)
        sent_at = DateTimeField(null=True)

        class Meta:
            indexes = (
                (("team", "id"), False),
                (("team", "status", "id"), False),
                (("status", "created_at"), False),
            )

    class TxEvent(Base):
        id = IdField()
        tx_message = ForeignKeyField(TxMessage, on_delete="CASCADE")
        status = CharField()
        at = DateTimeField(default=datetime.datetime.utcnow)
        detail = TextField(default="")

    db.create_tables([TxMessage, TxEvent])
    migrator.migrate(migrator.add_column("smtp_account", "transactional", BooleanField(default=False)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column("smtp_account", "transactional"))
    db.execute_sql('DROP TABLE IF EXISTS "tx_event"')
    db.execute_sql('DROP TABLE IF EXISTS "tx_message"')
