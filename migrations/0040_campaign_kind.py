"""One name for a body's format.

campaign.body_kind -> campaign.kind   "html" or "markdown", the name template.kind and
                                      template_draft.kind already use: a campaign started from a
                                      template copies its kind, and the preview reads the same
                                      attribute from both. Values are unchanged.

A rename in place (ALTER TABLE ... RENAME COLUMN on SQLite 3.25+ and PostgreSQL): no table is
rebuilt, so ids, indexes and foreign keys stay as they are.
"""


def up(migrator, db):
    migrator.migrate(migrator.rename_column("campaign", "body_kind", "kind"))


def down(migrator, db):
    migrator.migrate(migrator.rename_column("campaign", "kind", "body_kind"))
