"""Deleting an automation (app/automations/deletion.py): automation_retired_campaign keeps the hidden campaigns of a
deleted automation's email steps hidden. The steps go with the automation, but their campaigns stay (cancelled), since
the Send rows and Event rows under them are the contacts' Activity and what was sent; this table is what still marks
them as "not a campaign the team wrote" (app.models.automation_email_campaigns)."""
from peewee import CharField
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

    class Team(Base):
        class Meta:
            table_name = "team"

    class Campaign(Base):
        class Meta:
            table_name = "campaign"

    class AutomationRetiredCampaign(Base):
        id = IdField()
        campaign = ForeignKeyField(Campaign, on_delete="CASCADE", unique=True)
        team = ForeignKeyField(Team, on_delete="CASCADE")
        automation_name = CharField(default="")
        deleted_at = DateTimeField(default=utcnow)

    db.create_tables([AutomationRetiredCampaign])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "automation_retired_campaign"')
