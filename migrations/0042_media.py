"""The teams' media libraries: images uploaded for emails.

media_item   one image of a team, re-encoded without its metadata and at most 1200 px wide, stored as a
             file under LOFT_MEDIA_DIR and served publicly at /m/<key>.<ext>. `key` is random and
             unguessable (it is the only thing a reader of the email sees); `sha256` is the digest of the
             file as uploaded, so uploading the same file again finds the item already there
             (unique per team). name, content type, width, height and bytes describe the stored file.
"""
import datetime

from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
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

    class MediaItem(Base):
        id = IdField()
        team = ForeignKeyField(Team, on_delete="CASCADE")
        key = CharField(unique=True)
        extension = CharField()
        name = CharField()
        content_type = CharField()
        width = IntegerField()
        height = IntegerField()
        bytes = IntegerField()
        sha256 = CharField()
        uploaded_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
        created_at = DateTimeField(default=datetime.datetime.utcnow)

        class Meta:
            indexes = (
                (("team", "sha256"), True),
                (("team", "id"), False),
            )

    db.create_tables([MediaItem])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "media_item"')
