"""Warm-up plans: presets and a target on SMTP accounts, the same plan on sender domains, and the time a
campaign held by a plan resumes.

smtp_account.warmup_preset          "double" (×2 a day), "fixed" (the first day's cap, no end) or "custom";
                                    accounts warming up when this runs keep their first day and growth
                                    ("custom").
smtp_account.warmup_target          where the ramp ends (0: the account's per_day, or 250,000 without one).
sender_domain.warmup_*              the same plan for everything sent From the domain through any of the
                                    team's accounts; warmup_started_on NULL = no plan.
campaign.waiting_until              while a warm-up plan holds a sending campaign: when the engine's
                                    scheduled run continues it (UTC); NULL otherwise.
"""
from peewee import CharField
from peewee import DateField
from peewee import DateTimeField
from peewee import IntegerField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("smtp_account", "warmup_preset", CharField(default="custom")),
        migrator.add_column("smtp_account", "warmup_target", IntegerField(default=0)),
        migrator.add_column("sender_domain", "warmup_started_on", DateField(null=True)),
        migrator.add_column("sender_domain", "warmup_preset", CharField(default="double")),
        migrator.add_column("sender_domain", "warmup_first_day", IntegerField(default=50)),
        migrator.add_column("sender_domain", "warmup_growth_percent", IntegerField(default=100)),
        migrator.add_column("sender_domain", "warmup_target", IntegerField(default=0)),
        migrator.add_column("campaign", "waiting_until", DateTimeField(null=True)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column("campaign", "waiting_until"),
        migrator.drop_column("sender_domain", "warmup_target"),
        migrator.drop_column("sender_domain", "warmup_growth_percent"),
        migrator.drop_column("sender_domain", "warmup_first_day"),
        migrator.drop_column("sender_domain", "warmup_preset"),
        migrator.drop_column("sender_domain", "warmup_started_on"),
        migrator.drop_column("smtp_account", "warmup_target"),
        migrator.drop_column("smtp_account", "warmup_preset"),
    )
