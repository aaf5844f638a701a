"""Automation triggers (app/automations/triggers.py): the segment-entry baseline and custom events.

automation_segment_mark: when a segment-entry automation last compared its segment (and which segment), so members
at go-live are a baseline and only newcomers enter. automation_segment_member: who was a member at the last check.
automation_event: the events an API call or triggers.record_event() recorded, kept for the simulation's estimate."""
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import Model

from app.db import IdField
from app.db import JSONField
from app.models.common import utcnow


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Team(Base):
        class Meta:
            table_name = "team"

    class Contact(Base):
        class Meta:
            table_name = "contact"

    class Automation(Base):
        class Meta:
            table_name = "automation"

    class AutomationSegmentMark(Base):
        id = IdField()
        automation = ForeignKeyField(Automation, on_delete="CASCADE", unique=True)
        segment_id = IntegerField()
        baseline_at = DateTimeField(default=utcnow)
        checked_at = DateTimeField(default=utcnow)

    class AutomationSegmentMember(Base):
        id = IdField()
        automation = ForeignKeyField(Automation, on_delete="CASCADE", index=False)
        contact = ForeignKeyField(Contact, on_delete="CASCADE")
        since = DateTimeField(default=utcnow)

        class Meta:
            indexes = ((("automation", "contact"), True),)

    class AutomationEvent(Base):
        id = IdField()
        team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
        contact = ForeignKeyField(Contact, null=True, on_delete="SET NULL")
        name = CharField()
        data = JSONField()
        created_at = DateTimeField(default=utcnow)

        class Meta:
            indexes = ((("team", "name", "created_at"), False),)

    db.create_tables([AutomationSegmentMark, AutomationSegmentMember, AutomationEvent])


def down(migrator, db):
    for table in ("automation_event", "automation_segment_member", "automation_segment_mark"):
        db.execute_sql(f'DROP TABLE IF EXISTS "{table}"')
