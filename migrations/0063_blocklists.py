"""DNS blocklists: each list's last answer about a team's sending domains and SMTP account addresses.

blocklist_status   team, kind (address | domain), target, zone, status (listed | clean | unknown), codes (the A
                   records of a listing), meaning, reason (the TXT record), hosts (SMTP host names of an address),
                   checked_at, listed_since (set by the first listed answer, cleared by the first clean one: the
                   alerts go out on those changes). One row per (team, target, zone).
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

    class BlocklistStatus(Base):
        id = IdField()
        team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
        kind = CharField()
        target = CharField()
        zone = CharField()
        status = CharField()
        codes = JSONField(empty=list)
        meaning = TextField(default="")
        reason = TextField(default="")
        hosts = JSONField(empty=list)
        checked_at = DateTimeField(default=datetime.datetime.utcnow)
        listed_since = DateTimeField(null=True)

        class Meta:
            indexes = ((("team", "target", "zone"), True),)

    db.create_tables([BlocklistStatus])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "blocklist_status"')
