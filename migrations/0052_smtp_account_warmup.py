"""Warm-up of SMTP accounts: a new account's daily cap starts small and grows day by day.

smtp_account.warmup_started_on      the UTC day the warm-up began (day 1); NULL = no warm-up. Accounts
                                    that exist when this runs are not warming up.
smtp_account.warmup_first_day       messages allowed on day 1.
smtp_account.warmup_growth_percent  how much the daily cap grows each day, in percent.
"""
from peewee import DateField
from peewee import IntegerField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("smtp_account", "warmup_started_on", DateField(null=True)),
        migrator.add_column("smtp_account", "warmup_first_day", IntegerField(default=50)),
        migrator.add_column("smtp_account", "warmup_growth_percent", IntegerField(default=50)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column("smtp_account", "warmup_growth_percent"),
        migrator.drop_column("smtp_account", "warmup_first_day"),
        migrator.drop_column("smtp_account", "warmup_started_on"),
    )
