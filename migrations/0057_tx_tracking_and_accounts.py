"""Transactional email: optional open and click tracking, and the SMTP account each message went through.

tx_message.track_opens / track_clicks   whether the message carries the open pixel / tracked links
tx_message.links                        the tracked links' URLs; a click link names one by its place (1, 2, ...)
tx_message.opened_at / clicked_at       the first open and the first click
tx_message.opens / clicks               how many opens and clicks were recorded
tx_message.smtp_account                 the account it went out through: its hourly and daily caps count it
tx_message.waiting                      why a queued message is waiting (its account is paused or at a cap)
tx_message.waited_at                    when it last looked at its account and waited
"""
from peewee import BooleanField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import Model
from peewee import TextField

from app.db import JSONField


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class SmtpAccount(Base):
        class Meta:
            table_name = "smtp_account"

    migrator.migrate(
        migrator.add_column("tx_message", "track_opens", BooleanField(default=False)),
        migrator.add_column("tx_message", "track_clicks", BooleanField(default=False)),
        migrator.add_column("tx_message", "links", JSONField(empty=list)),
        migrator.add_column("tx_message", "opened_at", DateTimeField(null=True)),
        migrator.add_column("tx_message", "clicked_at", DateTimeField(null=True)),
        migrator.add_column("tx_message", "opens", IntegerField(default=0)),
        migrator.add_column("tx_message", "clicks", IntegerField(default=0)),
        migrator.add_column("tx_message", "waiting", TextField(default="")),
        migrator.add_column("tx_message", "waited_at", DateTimeField(null=True)),
        migrator.add_column("tx_message", "smtp_account_id",
                            ForeignKeyField(SmtpAccount, null=True, on_delete="SET NULL", index=False,
                                            field=SmtpAccount._meta.primary_key)),
        # The per-account hourly and daily counts (as send(smtp_account_id, sent_at) for campaigns).
        migrator.add_index("tx_message", ("smtp_account_id", "sent_at"), False),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index("tx_message", "tx_message_smtp_account_id_sent_at"),
        *[migrator.drop_column("tx_message", column) for column in (
            "smtp_account_id", "waited_at", "waiting", "clicks", "opens", "clicked_at", "opened_at", "links", "track_clicks",
            "track_opens")],
    )
