"""Each team's contact count, kept by the report aggregator's minute task for the dashboard.

contact_count  one row per team: its contacts in all and its active ones, and when they were
               counted. Counting a million contacts' index takes tens of milliseconds; the task does
               it once a minute, so the dashboard reads one row instead. Deleting a team deletes its row.
"""
import datetime

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

    class Team(Base):
        class Meta:
            table_name = "team"

    class ContactCount(Base):
        id = IdField()
        team = ForeignKeyField(Team, unique=True, on_delete="CASCADE")
        total = IntegerField(default=0)
        active = IntegerField(default=0)
        counted_at = DateTimeField(default=datetime.datetime.utcnow)

    db.create_tables([ContactCount])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "contact_count"')
