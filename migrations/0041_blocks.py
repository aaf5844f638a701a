"""Block emails: a body kept as a list of blocks, and the recent versions of that list for undo.

campaign.blocks, template.blocks, template_draft.blocks
                 the block document ({"version": 1, "blocks": [...]}, app/content/blocks/schema.py) of a
                 body whose kind is "blocks"; NULL for html and markdown bodies. `body` keeps the email
                 HTML rendered from it, so preview, tracking and sending read what they read today.
block_revision   the documents an owner had before its last changes (at most 30 per owner, oldest
                 dropped first), so "Undo" can put the previous one back. owner_type is "campaign",
                 "template" or "template_draft" and owner_id that row's id; no foreign key, since one
                 column points at three tables: the owner's services delete its revisions with it.
"""
import datetime

from peewee import CharField
from peewee import DateTimeField
from peewee import IntegerField
from peewee import Model
from peewee import TextField

from app.db import IdField


def up(migrator, db):
    class BlockRevision(Model):
        id = IdField()
        owner_type = CharField()
        owner_id = IntegerField()
        document = TextField(default="{}")
        created_at = DateTimeField(default=datetime.datetime.utcnow)

        class Meta:
            database = db
            table_name = "block_revision"
            indexes = ((("owner_type", "owner_id", "id"), False),)

    migrator.migrate(
        migrator.add_column("campaign", "blocks", TextField(null=True)),
        migrator.add_column("template", "blocks", TextField(null=True)),
        migrator.add_column("template_draft", "blocks", TextField(null=True)),
    )
    db.create_tables([BlockRevision])


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "block_revision"')
    migrator.migrate(
        migrator.drop_column("template_draft", "blocks"),
        migrator.drop_column("template", "blocks"),
        migrator.drop_column("campaign", "blocks"),
    )
