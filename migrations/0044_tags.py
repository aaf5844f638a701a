"""Tags on contacts.

tag          a team's label for contacts; unique per team ignoring case through name_key (the
             lower-cased name), so SQLite and PostgreSQL enforce the same rule.
contact_tag  one tag on one contact; unique (contact_id, tag_id) lists a contact's tags, and
             (tag_id, contact_id) walks a tag's contacts in id order for the contact filter,
             the tag counts and the segment rules' EXISTS. Deleting a contact or a tag deletes
             its rows here.
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

    class Contact(Base):
        class Meta:
            table_name = "contact"

    now = datetime.datetime.utcnow

    class Tag(Base):
        id = IdField()
        team = ForeignKeyField(Team, on_delete="CASCADE")
        name = CharField()
        name_key = CharField()
        created_at = DateTimeField(default=now)

        class Meta:
            indexes = ((("team", "name_key"), True),)

    class ContactTag(Base):
        id = IdField()
        contact = ForeignKeyField(Contact, on_delete="CASCADE")
        tag = ForeignKeyField(Tag, on_delete="CASCADE")
        created_at = DateTimeField(default=now)

        class Meta:
            indexes = ((("contact", "tag"), True), (("tag", "contact"), False))

    db.create_tables([Tag, ContactTag])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "contact_tag"')
    db.execute_sql('DROP TABLE IF EXISTS "tag"')
