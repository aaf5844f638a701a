"""Whether each SMTP account can be reached.

smtp_account.connection_state   "" until the engine first connects, then "ok" or "failing"
smtp_account.last_error         the last connection failure in words ("connection refused", ...)
smtp_account.failing_since      when the current run of failures began (UTC); NULL when reachable
smtp_account.connected_at       the last successful connection (UTC)

The sending engine writes them when the state changes (app/senders/health.py); the account card and
the campaign page show "waiting for SMTP host X: ... since 12:01, retrying" instead of a frozen rate.
"""
from peewee import CharField
from peewee import DateTimeField
from peewee import TextField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("smtp_account", "connection_state", CharField(default="")),
        migrator.add_column("smtp_account", "last_error", TextField(default="")),
        migrator.add_column("smtp_account", "failing_since", DateTimeField(null=True)),
        migrator.add_column("smtp_account", "connected_at", DateTimeField(null=True)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column("smtp_account", "connected_at"),
        migrator.drop_column("smtp_account", "failing_since"),
        migrator.drop_column("smtp_account", "last_error"),
        migrator.drop_column("smtp_account", "connection_state"),
    )
