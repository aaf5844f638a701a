"""Domain health (app/deliverability/gate.py).

domain_health   one row per sender domain: the last DNS check (checked_at, status, results as JSON), why
                mail from it would be rejected (gate_reason, empty when it passes; gate_reasons the same per
                From domain, "" for the domain itself, a subdomain sender's by its name), when the failure
                began (failing_since) and when its one alert went out (alerted_at)
domain_pause    the campaigns the gate paused, each with the reason it wrote, so only these are resumed
"""
import datetime

from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import Model
from peewee import TextField

from app.db import IdField
from app.db import JSONField


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Team(Base):
        class Meta:
            table_name = "team"

    class SenderDomain(Base):
        class Meta:
            table_name = "sender_domain"

    class Campaign(Base):
        class Meta:
            table_name = "campaign"

    class DomainHealth(Base):
        id = IdField()
        team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
        sender_domain = ForeignKeyField(SenderDomain, on_delete="CASCADE", unique=True)
        checked_at = DateTimeField(null=True)
        status = CharField(default="unknown")
        results = JSONField(empty=list)
        gate_reason = TextField(default="")
        gate_reasons = JSONField(empty=dict)
        failing_since = DateTimeField(null=True)
        alerted_at = DateTimeField(null=True)

    class DomainPause(Base):
        id = IdField()
        campaign = ForeignKeyField(Campaign, on_delete="CASCADE", unique=True)
        sender_domain = ForeignKeyField(SenderDomain, on_delete="CASCADE")
        reason = TextField(default="")
        paused_at = DateTimeField(default=datetime.datetime.utcnow)

    db.create_tables([DomainHealth, DomainPause])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "domain_pause"')
    db.execute_sql('DROP TABLE IF EXISTS "domain_health"')
