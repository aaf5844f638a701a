"""Hourly and daily caps of an SMTP account hold across every run that sends through it; the single
campaign lease of migration 0013 goes.

send_permit   messages one live run may still send through a capped account: granted in small blocks
              in a transaction that serialises with the other runs' (the account row locked on
              PostgreSQL; SQLite's write lock), used as its sends are recorded sent. Rows of a run go
              with its send_run row; a dead run's rows count for nothing once its heartbeat is stale.
campaign      run_token and heartbeat_at dropped: the runs of a campaign are send_run rows (0049).
"""
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import Model

from app.db import IdField


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class SendRun(Base):
        class Meta:
            table_name = "send_run"

    class SmtpAccount(Base):
        class Meta:
            table_name = "smtp_account"

    class SendPermit(Base):
        id = IdField()
        run = ForeignKeyField(SendRun, on_delete="CASCADE", index=False)
        account = ForeignKeyField(SmtpAccount, on_delete="CASCADE")
        held = IntegerField(default=0)

        class Meta:
            indexes = ((("run", "account"), True),)

    db.create_tables([SendPermit])
    migrator.migrate(
        migrator.drop_column("campaign", "run_token"),
        migrator.drop_column("campaign", "heartbeat_at"),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.add_column("campaign", "run_token", CharField(default="")),
        migrator.add_column("campaign", "heartbeat_at", DateTimeField(null=True)),
    )
    db.execute_sql('DROP TABLE IF EXISTS "send_permit"')
