"""The AI help of the campaign builder, and a preheader per A/B variant.

ai_job            one piece of AI help a writer asked for in the builder (subject lines, a draft, a rewrite),
                  run by a background task: its state, the prompt inputs, the result or the error in words,
                  the AiGeneration it came from, and what accepting it replaced (for undo). Deleting a
                  campaign or team deletes its jobs; deleting a user or a generation keeps the job without it.
variant.preheader the preheader of a variant of a subject test ("" = the campaign's), so an A/B test can try
                  a subject line together with the preheader written for it.
"""
import datetime

from peewee import BooleanField
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import Model
from peewee import TextField

from app.db import IdField


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Team(Base):
        class Meta:
            table_name = "team"

    class User(Base):
        class Meta:
            table_name = "user"

    class Campaign(Base):
        class Meta:
            table_name = "campaign"

    class AiGeneration(Base):
        class Meta:
            table_name = "ai_generation"

    class AiJob(Base):
        id = IdField()
        team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
        user = ForeignKeyField(User, null=True, on_delete="SET NULL")
        campaign = ForeignKeyField(Campaign, null=True, on_delete="CASCADE", index=False)
        kind = CharField()
        state = CharField(default="queued")
        inputs = TextField(default="{}")
        context = TextField(default="{}")
        regenerate = BooleanField(default=False)
        result = TextField(default="{}")
        error = TextField(default="")
        generation = ForeignKeyField(AiGeneration, null=True, on_delete="SET NULL")
        created_at = DateTimeField(default=datetime.datetime.utcnow)
        finished_at = DateTimeField(null=True)
        accepted_at = DateTimeField(null=True)
        previous = TextField(null=True)

        class Meta:
            indexes = (
                (("team", "id"), False),
                (("campaign", "id"), False),
            )

    db.create_tables([AiJob])
    migrator.migrate(migrator.add_column("variant", "preheader", TextField(default="")))


def down(migrator, db):
    migrator.migrate(migrator.drop_column("variant", "preheader"))
    db.execute_sql('DROP TABLE IF EXISTS "ai_job"')
