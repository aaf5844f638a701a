"""Automation email steps (app/automations/mail.py): automation_mail, the ledger of the messages runs queued, one row
per (run, step), written in the same transaction as the message's Send row, so a step done again after a crash or a
retry never queues a second message."""
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import Model

from app.db import IdField
from app.models.common import utcnow


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class AutomationRun(Base):
        class Meta:
            table_name = "automation_run"

    class AutomationStep(Base):
        class Meta:
            table_name = "automation_step"

    class AutomationMail(Base):
        id = IdField()
        run = ForeignKeyField(AutomationRun, on_delete="CASCADE", index=False)
        step = ForeignKeyField(AutomationStep, on_delete="CASCADE")
        send_id = IntegerField(null=True)  # the Send row in the step's hidden campaign (reused by a later entry)
        after_event_id = IntegerField(default=0)  # the newest Event id when queued: this run's opens come after it
        created_at = DateTimeField(default=utcnow)

        class Meta:
            indexes = ((("run", "step"), True),)

    db.create_tables([AutomationMail])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "automation_mail"')
