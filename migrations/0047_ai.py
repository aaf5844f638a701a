"""AI writing help: what each generation asked and cost, and each team's AI switch and budget.

ai_generation  one answer a provider gave: the prompt name and version, the model, a hash of the request
               (the cache key, with the team), the inputs as sent (only what the writer typed), the output,
               tokens, the cost in millionths of a US dollar (an integer, so sums are exact) and how often
               the cache served it since. Deleting a team deletes its rows; deleting a user keeps the rows
               (the team's cost stays) without the user.
team           ai_enabled: an instance administrator's per-team switch (on for every team that exists);
               ai_monthly_budget_usd: the team's own monthly limit, NULL = the instance default.
"""
import datetime

from peewee import BooleanField
from peewee import CharField
from peewee import DateTimeField
from peewee import FloatField
from peewee import ForeignKeyField
from peewee import IntegerField
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

    class AiGeneration(Base):
        id = IdField()
        team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
        user = ForeignKeyField(User, null=True, on_delete="SET NULL")
        prompt = CharField()
        version = CharField()
        model = CharField()
        input_hash = CharField()
        inputs = TextField(default="{}")
        output = TextField(default="{}")
        input_tokens = IntegerField(default=0)
        output_tokens = IntegerField(default=0)
        cost_micros = IntegerField(default=0)
        latency_ms = IntegerField(default=0)
        finish_reason = CharField(default="stop")
        cache_hits = IntegerField(default=0)
        created_at = DateTimeField(default=datetime.datetime.utcnow)

        class Meta:
            indexes = (
                (("team", "prompt", "version", "model", "input_hash"), False),
                (("team", "created_at"), False),
            )

    db.create_tables([AiGeneration])
    migrator.migrate(
        migrator.add_column("team", "ai_enabled", BooleanField(default=True)),
        migrator.add_column("team", "ai_monthly_budget_usd", FloatField(null=True)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column("team", "ai_monthly_budget_usd"),
        migrator.drop_column("team", "ai_enabled"),
    )
    db.execute_sql('DROP TABLE IF EXISTS "ai_generation"')
