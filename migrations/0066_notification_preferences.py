"""Notification preferences: notification_preference (user, team, event, by_email, in_app, updated_at), one row per
(user, team, event), written only where a person's choice differs from the defaults of their role."""
import datetime

from peewee import BooleanField
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

    class User(Base):
        class Meta:
            table_name = "user"

    class Team(Base):
        class Meta:
            table_name = "team"

    class NotificationPreference(Base):
        id = IdField()
        user = ForeignKeyField(User, on_delete="CASCADE", index=False)
        team = ForeignKeyField(Team, on_delete="CASCADE")
        event = CharField()
        by_email = BooleanField()
        in_app = BooleanField()
        updated_at = DateTimeField(default=datetime.datetime.utcnow)

        class Meta:
            indexes = ((("user", "team", "event"), True),)

    db.create_tables([NotificationPreference])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "notification_preference"')
