"""UTM tagging and A/B tests with up to four variants.

campaign.utm        {"enabled", "source", "medium", "campaign", "content"}: the utm_* parameters added
                    to the campaign's web links (app/content/utm.py). Campaigns that exist when this
                    runs read as {} (not tagged): their links, and the Link rows their clicks point
                    at, stay exactly as they were sent.
variant.from_name   the From name of a variant of a from-name test ("" = the campaign's).
variant.send_at     when a variant of a send-time test goes to its share of the sample (UTC; NULL =
                    when the campaign starts).
"""
from peewee import CharField
from peewee import DateTimeField
from peewee import TextField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("campaign", "utm", TextField(default="{}")),
        migrator.add_column("variant", "from_name", CharField(default="")),
        migrator.add_column("variant", "send_at", DateTimeField(null=True)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column("variant", "send_at"),
        migrator.drop_column("variant", "from_name"),
        migrator.drop_column("campaign", "utm"),
    )
