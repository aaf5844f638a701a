"""Template drafts: the live preview of the template editor.

The editor shows the email being written in a sandboxed iframe. Email HTML
relies on inline styles, which the app's own CSP forbids (an iframe's srcdoc
inherits it), so the preview is served from its own URL with its own CSP; the
unsaved text it shows is kept here, one row per person and template, replaced
at every pause in typing and removed after a day.
"""
import datetime
import secrets

from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import Model
from peewee import TextField


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

    class TemplateDraft(Base):
        team = ForeignKeyField(Team, on_delete="CASCADE")
        user = ForeignKeyField(User, on_delete="CASCADE")
        slot = CharField()  # the template id being edited, or "new"
        name = CharField(default="")
        kind = CharField(default="html")
        body = TextField(default="")
        token = CharField(unique=True, default=lambda: secrets.token_urlsafe(24))
        updated_at = DateTimeField(default=datetime.datetime.utcnow, index=True)

        class Meta:
            indexes = ((("user", "team", "slot"), True),)

    db.create_tables([TemplateDraft])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "template_draft"')
