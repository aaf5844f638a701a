"""Bounce intake: IMAP bounce mailboxes and provider webhooks.

bounce_mailbox   an IMAP mailbox read on a schedule (app.bounces.imap); uid_validity/last_uid
                 remember which messages were already looked at
provider_hook    a team's webhook for SES (SNS), SendGrid, Postmark, Mailgun or the generic form
                 (app.bounces.provider_webhooks), with the secret of its URL and its keys
hook_nonce       signature tokens already used, so a captured request cannot be replayed

Frozen copies of the models as they were when this migration was written.
"""
import datetime
import secrets

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

    def utcnow():
        return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)

    def new_token():
        return secrets.token_urlsafe(32)

    class Team(Base):
        class Meta:
            table_name = "team"

    class SmtpAccount(Base):
        class Meta:
            table_name = "smtp_account"

    class BounceMailbox(Base):
        team = ForeignKeyField(Team, on_delete="CASCADE")
        smtp_account = ForeignKeyField(SmtpAccount, null=True, on_delete="SET NULL")
        name = CharField(default="")
        preset = CharField(default="generic")
        host = CharField()
        port = IntegerField(default=993)
        security = CharField(default="ssl")
        username = CharField(default="")
        password = TextField(default="")
        folder = CharField(default="INBOX")
        processed_folder = CharField(default="Loft/Processed")
        enabled = BooleanField(default=True)
        uid_validity = IntegerField(default=0)
        last_uid = IntegerField(default=0)
        last_checked_at = DateTimeField(null=True)
        last_error = TextField(default="")
        last_summary = TextField(default="{}")
        created_at = DateTimeField(default=utcnow)

    class ProviderHook(Base):
        team = ForeignKeyField(Team, on_delete="CASCADE")
        provider = CharField()
        token = CharField(unique=True, default=new_token)
        secret = TextField(default="")
        username = CharField(default="")
        created_at = DateTimeField(default=utcnow)
        last_received_at = DateTimeField(null=True)
        received_count = IntegerField(default=0)
        last_error = TextField(default="")

        class Meta:
            indexes = ((("team", "provider"), True),)

    class HookNonce(Base):
        hook = ForeignKeyField(ProviderHook, on_delete="CASCADE")
        nonce = CharField()
        at = DateTimeField(default=utcnow, index=True)

        class Meta:
            indexes = ((("hook", "nonce"), True),)

    db.create_tables([BounceMailbox, ProviderHook, HookNonce])


def down(migrator, db):
    for table in ("hook_nonce", "provider_hook", "bounce_mailbox"):
        db.execute_sql('DROP TABLE IF EXISTS "%s"' % table)
