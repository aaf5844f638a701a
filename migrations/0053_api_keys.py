"""API keys: a team's scripts and apps call /api/v1 with one of these, acting with one team role.

api_key   name, role (one of the team roles), prefix (the first characters of the key, shown to tell keys
          apart), key_hash (SHA-256 hex of the whole key, the only form the key is kept in; looked up on
          every API request, hence unique), who created it and when, when it was last used (written at most
          once a minute) and revoked. Deleting the team deletes its keys; deleting the user keeps them.
"""
import datetime

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

    class User(Base):
        class Meta:
            table_name = "user"

    class ApiKey(Base):
        id = IdField()
        team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
        name = CharField()
        role = CharField()
        prefix = CharField()
        key_hash = CharField(unique=True)
        created_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
        created_at = DateTimeField(default=datetime.datetime.utcnow)
        last_used_at = DateTimeField(null=True)
        revoked_at = DateTimeField(null=True)

        class Meta:
            indexes = ((("team", "id"), False),)

    db.create_tables([ApiKey])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "api_key"')
