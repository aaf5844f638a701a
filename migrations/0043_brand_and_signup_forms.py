"""Brand kits and the sign-up form builder.

brand_kit     one per team: the logo (a "/m/..." path from the media library or an https URL), the primary,
              background and text colours (#rrggbb), a font chosen by name among email-safe stacks, and the
              footer text. Applied to block emails and to the public pages. `public_key` names the team's
              public stylesheet without revealing the team's id.
signup_form   a sign-up form built by the team: an unguessable `public_id` (its hosted page /f/<public_id>,
              like a list's), the lists it subscribes to and the fields it asks (JSON), its wording, its
              colours (JSON, empty = the brand kit's) and the popup's delay.
form_signup   one subscription a form brought (form, contact, list): what the form's sign-up count counts;
              a row goes with its form, its contact (an erased contact is no longer counted) or its list.
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

    class Contact(Base):
        class Meta:
            table_name = "contact"

    class MailingList(Base):
        class Meta:
            table_name = "mailing_list"

    now = datetime.datetime.utcnow

    class BrandKit(Base):
        id = IdField()
        team = ForeignKeyField(Team, unique=True, on_delete="CASCADE")
        public_key = CharField(unique=True)
        logo_url = TextField(default="")
        primary_color = CharField(default="")
        background_color = CharField(default="")
        text_color = CharField(default="")
        font = CharField(default="")
        footer_text = TextField(default="")
        updated_at = DateTimeField(default=now)

    class SignupForm(Base):
        id = IdField()
        team = ForeignKeyField(Team, on_delete="CASCADE")
        name = CharField()
        public_id = CharField(unique=True)
        list_ids = TextField(default="[]")
        fields = TextField(default="[]")
        title = CharField(default="")
        intro = TextField(default="")
        consent_text = TextField(default="")
        button_label = CharField(default="")
        success_message = TextField(default="")
        colors = TextField(default="{}")
        popup_delay = IntegerField(default=0)
        created_at = DateTimeField(default=now)
        updated_at = DateTimeField(default=now)

        class Meta:
            indexes = ((("team", "id"), False),)

    class FormSignup(Base):
        id = IdField()
        form = ForeignKeyField(SignupForm, on_delete="CASCADE")
        contact = ForeignKeyField(Contact, on_delete="CASCADE")
        list = ForeignKeyField(MailingList, on_delete="CASCADE")
        created_at = DateTimeField(default=now)

        class Meta:
            indexes = ((("form", "contact", "list"), True),)

    db.create_tables([BrandKit, SignupForm, FormSignup])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "form_signup"')
    db.execute_sql('DROP TABLE IF EXISTS "signup_form"')
    db.execute_sql('DROP TABLE IF EXISTS "brand_kit"')
