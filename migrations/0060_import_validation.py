"""Address validation at import: each team's policy.

team.import_validation   "off" (syntax only, as before), "flag" (every address checked; invalid and risky ones
                         imported with a tag naming why) or "reject" (invalid ones go to the rejects file with
                         the reason, risky ones imported with the tag); app/imports/screening.py applies it.
"""
from peewee import CharField


def up(migrator, db):
    migrator.migrate(migrator.add_column("team", "import_validation", CharField(default="off")))


def down(migrator, db):
    migrator.migrate(migrator.drop_column("team", "import_validation"))
