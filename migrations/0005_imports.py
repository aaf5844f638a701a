"""Import jobs: what the report and a resumed import need beyond 0002's columns.

has_header: a plain list of addresses often has no header row. duplicates and
blocked: counted apart from `rejected` so the report can say why a row was not
imported or not subscribed. heartbeat_at: written with every committed chunk,
so an import whose worker died is found and resumed.
"""
from peewee import BooleanField
from peewee import DateTimeField
from peewee import IntegerField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("import_job", "has_header", BooleanField(default=True)),
        migrator.add_column("import_job", "duplicates", IntegerField(default=0)),
        migrator.add_column("import_job", "blocked", IntegerField(default=0)),
        migrator.add_column("import_job", "heartbeat_at", DateTimeField(null=True)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column("import_job", "heartbeat_at"),
        migrator.drop_column("import_job", "blocked"),
        migrator.drop_column("import_job", "duplicates"),
        migrator.drop_column("import_job", "has_header"),
    )
