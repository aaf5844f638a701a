"""Accounts, teams, memberships, invites, instance settings, the mail catcher's store.

Models are frozen copies, independent of app/models/ on purpose: a later
change to the application models must not rewrite history.
"""
import datetime

from peewee import BlobField
from peewee import BooleanField
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import Model
from peewee import TextField


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    now = datetime.datetime.utcnow

    class User(Base):
        email = CharField(unique=True)
        name = CharField(default="")
        password_hash = CharField()
        session_token = CharField(unique=True)
        is_instance_admin = BooleanField(default=False)
        totp_secret = TextField(null=True)
        totp_last_step = IntegerField(default=0)
        current_team_id = IntegerField(null=True)
        created_at = DateTimeField(default=now)
        last_login_at = DateTimeField(null=True)

    class RecoveryCode(Base):
        user = ForeignKeyField(User, on_delete="CASCADE")
        code_hash = CharField()
        used_at = DateTimeField(null=True)

    class PasswordReset(Base):
        user = ForeignKeyField(User, on_delete="CASCADE")
        token_hash = CharField(unique=True)
        expires_at = DateTimeField()
        used_at = DateTimeField(null=True)

    class LoginFailure(Base):
        email = CharField(index=True)
        ip = CharField(index=True)
        at = DateTimeField(default=now, index=True)

    class Team(Base):
        name = CharField()
        time_zone = CharField(default="UTC")
        default_from_name = CharField(default="")
        default_from_email = CharField(default="")
        postal_address = TextField(default="")
        created_at = DateTimeField(default=now)

    class Membership(Base):
        user = ForeignKeyField(User, on_delete="CASCADE")
        team = ForeignKeyField(Team, on_delete="CASCADE")
        role = CharField()
        created_at = DateTimeField(default=now)

        class Meta:
            indexes = ((("user", "team"), True),)

    class Invite(Base):
        team = ForeignKeyField(Team, on_delete="CASCADE")
        email = CharField()
        role = CharField()
        token_hash = CharField(unique=True)
        invited_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
        created_at = DateTimeField(default=now)
        expires_at = DateTimeField()
        accepted_at = DateTimeField(null=True)

    class InstanceSetting(Base):
        key = CharField(unique=True)
        value = TextField()

    class CaughtMessage(Base):
        received_at = DateTimeField(default=now, index=True)
        mail_from = CharField()
        recipients = TextField()
        subject = TextField(default="")
        size = IntegerField()
        raw = BlobField()

    db.create_tables([User, RecoveryCode, PasswordReset, LoginFailure, Team,
                      Membership, Invite, InstanceSetting, CaughtMessage])


def down(migrator, db):
    for table in ("caught_message", "instance_setting", "invite", "membership", "team",
                  "login_failure", "password_reset", "recovery_code", "user"):
        db.execute_sql('DROP TABLE IF EXISTS "%s"' % table)
