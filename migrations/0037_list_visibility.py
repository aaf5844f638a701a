"""List visibility and partly imported rows.

mailing_list.visibility   "public" or "private". A private list has no public sign-up form and is not
                          shown in the preference center; it is for the team's own use (customers,
                          beta testers, staff). Lists that exist when this runs stay "public": their
                          hosted forms and embedded snippets are live on other sites, and making them
                          private on upgrade would silently turn sign-ups away. New lists start
                          private (app.models.MailingList), so a list is only exposed by a decision.
import_job.partial        rows imported without one or more bad optional values (reported per field in
                          the rejects file) instead of being rejected whole.
"""
from peewee import CharField
from peewee import IntegerField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("mailing_list", "visibility", CharField(default="public")),
        migrator.add_column("import_job", "partial", IntegerField(default=0)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column("import_job", "partial"),
        migrator.drop_column("mailing_list", "visibility"),
    )
