"""Contacts, custom fields, lists, subscriptions, segments, suppressions, events, imports, audit.

Frozen copies of the models as they were when this migration was written.
"""
import datetime
import secrets

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

    def utcnow():
        return datetime.datetime.utcnow()

    def new_token():
        return secrets.token_urlsafe(32)

    class Team(Base):
        class Meta:
            table_name = "team"

    class User(Base):
        class Meta:
            table_name = "user"

    class Contact(Base):
        team = ForeignKeyField(Team, on_delete="CASCADE")
        email = CharField()  # normalised: trimmed, lower-cased; unique per team
        domain = CharField()  # the part after @, for domain suppression and per-domain limits
        name = CharField(default="")
        status = CharField(default="active")  # one of CONTACT_STATUSES
        attributes = TextField(default="{}")  # JSON object keyed by CustomField.key; SQL reads it with json_extract
        source = CharField(default="")  # import, form, api, manual
        consent_source = CharField(default="")
        consent_at = DateTimeField(null=True)
        consent_ip = CharField(default="")
        consent_text = TextField(default="")  # the wording the person agreed to
        created_at = DateTimeField(default=utcnow)
        updated_at = DateTimeField(default=utcnow)
        last_activity_at = DateTimeField(null=True)

        class Meta:
            indexes = (
                (("team", "email"), True),
                (("team", "status", "id"), False),
                (("team", "created_at"), False),
                (("team", "domain"), False),
            )


    class CustomField(Base):
        team = ForeignKeyField(Team, on_delete="CASCADE")
        key = CharField()  # slug used in attributes JSON and templates: {{ contact.company }}
        label = CharField()
        type = CharField(default="text")  # one of FIELD_TYPES
        created_at = DateTimeField(default=utcnow)

        class Meta:
            indexes = ((("team", "key"), True),)


    class MailingList(Base):
        team = ForeignKeyField(Team, on_delete="CASCADE")
        name = CharField()
        description = TextField(default="")
        double_opt_in = BooleanField(default=True)  # public sign-ups must confirm by email
        public_id = CharField(unique=True, default=new_token)  # hosted sign-up form URL; unguessable
        created_at = DateTimeField(default=utcnow)


    class Subscription(Base):
        contact = ForeignKeyField(Contact, on_delete="CASCADE")
        list = ForeignKeyField(MailingList, on_delete="CASCADE")
        status = CharField(default="subscribed")  # one of SUBSCRIPTION_STATUSES
        created_at = DateTimeField(default=utcnow)
        confirmed_at = DateTimeField(null=True)
        unsubscribed_at = DateTimeField(null=True)

        class Meta:
            indexes = (
                (("contact", "list"), True),
                (("list", "status", "contact"), False),
            )


    class Segment(Base):
        team = ForeignKeyField(Team, on_delete="CASCADE")
        name = CharField()
        rules = TextField(default='{"op": "and", "rules": []}')  # JSON tree, compiled to one SQL query
        created_at = DateTimeField(default=utcnow)
        updated_at = DateTimeField(default=utcnow)


    class Suppression(Base):
        """A suppressed address or whole domain, stored as a keyed hash so it
        survives erasure of the contact: they are never mailed again."""
        team = ForeignKeyField(Team, on_delete="CASCADE")
        kind = CharField()  # "email" or "domain"
        value_hash = CharField()  # HMAC-SHA256 of the normalised value
        hint = CharField(default="")  # a non-identifying hint for the UI, e.g. "j…@example.com"
        reason = CharField(default="manual")  # manual, unsubscribed, bounced, complained, erased, import
        created_at = DateTimeField(default=utcnow)

        class Meta:
            indexes = ((("team", "kind", "value_hash"), True),)


    class Event(Base):
        """Something that happened to a contact: the timeline and the raw material of analytics."""
        team = ForeignKeyField(Team, on_delete="CASCADE")
        contact = ForeignKeyField(Contact, null=True, on_delete="SET NULL")
        campaign_id = IntegerField(null=True, index=True)  # no foreign key: the campaign table comes in a later migration
        type = CharField()  # created, imported, subscribed, confirmed, unsubscribed, status_changed, sent, opened, clicked, ...
        at = DateTimeField(default=utcnow)
        data = TextField(default="{}")  # JSON; personal parts are removed on erasure

        class Meta:
            indexes = (
                (("contact", "at"), False),
                (("team", "type", "at"), False),
            )


    class ImportJob(Base):
        """One CSV import: the uploaded file, the chosen mapping, live progress, the result."""
        team = ForeignKeyField(Team, on_delete="CASCADE")
        user = ForeignKeyField(User, null=True, on_delete="SET NULL")
        filename = CharField()
        path = CharField()  # where the upload is stored on disk (var/imports/...)
        encoding = CharField(default="")
        delimiter = CharField(default=",")
        mapping = TextField(default="{}")  # JSON: column index -> field
        list_ids = TextField(default="[]")  # JSON
        mode = CharField(default="add")  # "add" (new only) or "upsert" (add and update)
        status = CharField(default="uploaded")  # uploaded, queued, running, done, failed
        total_rows = IntegerField(default=0)
        processed_rows = IntegerField(default=0)
        created = IntegerField(default=0)
        updated = IntegerField(default=0)
        skipped = IntegerField(default=0)
        rejected = IntegerField(default=0)
        error = TextField(default="")
        rejects_path = CharField(default="")
        created_at = DateTimeField(default=utcnow)
        finished_at = DateTimeField(null=True)


    class AuditLog(Base):
        """Who did what to personal data (exports, erasures, suppression changes)."""
        team = ForeignKeyField(Team, on_delete="CASCADE")
        user = ForeignKeyField(User, null=True, on_delete="SET NULL")
        action = CharField()
        target = CharField(default="")
        data = TextField(default="{}")
        at = DateTimeField(default=utcnow, index=True)

    db.create_tables([Contact, CustomField, MailingList, Subscription, Segment, Suppression,
                      Event, ImportJob, AuditLog])


def down(migrator, db):
    for table in ("audit_log", "import_job", "event", "suppression", "segment", "subscription",
                  "mailing_list", "custom_field", "contact"):
        db.execute_sql('DROP TABLE IF EXISTS "%s"' % table)
