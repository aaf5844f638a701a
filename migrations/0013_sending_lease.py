"""The sending engine's run lease on a campaign.

campaign.run_token / campaign.heartbeat_at: the run that sends a campaign
holds a lease (a random token) and renews heartbeat_at every second. Another
run may take the campaign over only when the heartbeat is older than the
lease (SEND_LEASE_SECONDS), so after a kill -9 a restarted worker resumes by
itself within seconds, while two live workers can never send the same
campaign at once, on one machine or several.
"""
from peewee import CharField
from peewee import DateTimeField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("campaign", "run_token", CharField(default="")),
        migrator.add_column("campaign", "heartbeat_at", DateTimeField(null=True)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column("campaign", "heartbeat_at"),
        migrator.drop_column("campaign", "run_token"),
    )
