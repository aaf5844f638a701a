"""automation_date_mark (app/automations/triggers.py): for a date-field automation, since when it is live (or live
again after a pause) and when the hourly check last looked. Occurrences the check did not see (the worker was down)
are fired late, for up to a week back, and never for a day before the automation went live."""
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import Model

from app.db import IdField
from app.models.common import utcnow


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Automation(Base):
        class Meta:
            table_name = "automation"

    class AutomationDateMark(Base):
        id = IdField()
        automation = ForeignKeyField(Automation, on_delete="CASCADE", unique=True)
        live_since = DateTimeField(default=utcnow)
        checked_at = DateTimeField(null=True)

    db.create_tables([AutomationDateMark])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "automation_date_mark"')
