"""Address validation stored on contacts, and the "Validate this list" jobs.

contact.validation_status      "" (never checked), valid, risky or invalid: the last check's verdict
contact.validation_reasons     its reason codes joined by commas ("role,typo"), app.deliverability.validation's
contact.validation_suggestion  the corrected address of a typo, else ""
contact.validation_checked_at  when it was checked
validation_job                 one list's validation run: state, progress, counts per status and reason;
                               active_list (unique, NULL once finished) allows one running job per list
"""
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import Model
from peewee import TextField

from app.db import IdField
from app.db import JSONField
from app.db import server_default


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Team(Base):
        class Meta:
            table_name = "team"

    class MailingList(Base):
        class Meta:
            table_name = "mailing_list"

    class User(Base):
        class Meta:
            table_name = "user"

    class ValidationJob(Base):
        id = IdField()
        team = ForeignKeyField(Team, on_delete="CASCADE")
        list = ForeignKeyField(MailingList, on_delete="CASCADE", index=False)
        user = ForeignKeyField(User, null=True, on_delete="SET NULL")
        active_list = IntegerField(null=True, unique=True)
        state = CharField(default="queued")
        total = IntegerField(default=0)
        done = IntegerField(default=0)
        valid = IntegerField(default=0)
        risky = IntegerField(default=0)
        invalid = IntegerField(default=0)
        reasons = JSONField()
        after_id = IntegerField(default=0)
        error = TextField(default="")
        created_at = DateTimeField()
        started_at = DateTimeField(null=True)
        finished_at = DateTimeField(null=True)
        heartbeat_at = DateTimeField(null=True)

        class Meta:
            indexes = ((("list", "id"), False),)

    # A server default too: the import and the API's bulk writes insert contacts with raw many-row INSERTs
    # that name only the columns they fill.
    migrator.migrate(
        migrator.add_column("contact", "validation_status", CharField(default="", constraints=[server_default("")])),
        migrator.add_column("contact", "validation_reasons", CharField(default="", constraints=[server_default("")])),
        migrator.add_column("contact", "validation_suggestion",
                            CharField(default="", constraints=[server_default("")])),
        migrator.add_column("contact", "validation_checked_at", DateTimeField(null=True)),
    )
    db.create_tables([ValidationJob])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "validation_job"')
    migrator.migrate(*[migrator.drop_column("contact", column) for column in (
        "validation_checked_at", "validation_suggestion", "validation_reasons", "validation_status")])
