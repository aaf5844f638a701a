"""Several engine runs send one campaign at once.

send_run   one live engine run of a campaign: its random token and the heartbeat it renews every second.
           A row whose heartbeat is older than the lease belongs to a dead run (kill -9, power loss) and is
           removed by the next run that looks; the number of live rows bounds the runs per campaign and
           splits each SMTP account's limits among the runs of its team.
"""
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
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

    class Campaign(Base):
        class Meta:
            table_name = "campaign"

    class SendRun(Base):
        id = IdField()
        team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
        campaign = ForeignKeyField(Campaign, on_delete="CASCADE", index=False)
        token = CharField(unique=True)
        heartbeat_at = DateTimeField()

        class Meta:
            indexes = (
                (("campaign", "id"), False),
                (("team", "heartbeat_at"), False),
            )

    db.create_tables([SendRun])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "send_run"')
