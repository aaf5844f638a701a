"""Usage per stream and sender domain, billing plans assigned to teams, monthly caps, team suspension.

team.suspended_at / suspended_reason / suspended_by_id
                        an instance administrator's suspension (app/teams/standing.py): while set, nothing
                        leaves for the team; the reason is shown to its members.
team.monthly_email_cap  emails a month the team may send (NULL = no cap), set by an instance administrator.
team.billing_plan       the key of the instance's plan (settings "billing_plans"); "" = the default plan.
usage_count             messages sent per team, month ("YYYY-MM" in the team's time zone), stream
                        (marketing | transactional) and sender domain; written only by app/usage.py, one
                        upsert per flush. The rows of the older usage table are copied in as marketing
                        with no domain (that table counted UTC months; they are kept as they were).
usage_alert             the 80 % and 100 % cap alerts sent: one row per (team, month, level), so each goes
                        once a month.
"""
import datetime

from peewee import CharField
from peewee import DateTimeField
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

    class UsageCount(Base):
        id = IdField()
        team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
        month = CharField()
        stream = CharField()
        domain = CharField(default="")
        messages = IntegerField(default=0)

        class Meta:
            indexes = ((("team", "month", "stream", "domain"), True),)

    class UsageAlert(Base):
        id = IdField()
        team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
        month = CharField()
        level = IntegerField()
        sent_at = DateTimeField(default=datetime.datetime.utcnow)

        class Meta:
            indexes = ((("team", "month", "level"), True),)

    migrator.migrate(
        migrator.add_column("team", "suspended_at", DateTimeField(null=True)),
        migrator.add_column("team", "suspended_reason", TextField(default="")),
        migrator.add_column("team", "suspended_by_id", IntegerField(null=True)),
        migrator.add_column("team", "monthly_email_cap", IntegerField(null=True)),
        migrator.add_column("team", "billing_plan", CharField(default="")),
    )
    db.create_tables([UsageCount, UsageAlert])
    db.execute_sql('INSERT INTO "usage_count" ("team_id", "month", "stream", "domain", "messages") '
                   'SELECT "team_id", "month", \'marketing\', \'\', "messages_sent" FROM "usage"')


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "usage_alert"')
    db.execute_sql('DROP TABLE IF EXISTS "usage_count"')
    migrator.migrate(
        migrator.drop_column("team", "billing_plan"),
        migrator.drop_column("team", "monthly_email_cap"),
        migrator.drop_column("team", "suspended_by_id"),
        migrator.drop_column("team", "suspended_reason"),
        migrator.drop_column("team", "suspended_at"),
    )
