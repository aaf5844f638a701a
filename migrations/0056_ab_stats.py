"""The report's A/B table from the aggregates, not from the events.

ab_split  per A/B campaign, where the test sample ends (its last send id), how many sends of the sample
          each variant has, and whether every event of the
          campaign was counted into ab_stat. The campaigns that already went out when this runs had
          their events counted before ab_stat existed: they get a row with from_start false, and their
          A/B table is still counted from the events.
ab_stat   unique opens and clicks, unsubscribes and complaints per campaign, variant, and part (the test
          sample, rest 0, or the rest of the audience, rest 1).
"""
from peewee import BooleanField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import Model
from peewee import Value

from app.db import IdField
from app.db import JSONField


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Campaign(Base):
        started_at = IntegerField(null=True)  # only tested for NULL here

        class Meta:
            table_name = "campaign"

    class Variant(Base):
        campaign = ForeignKeyField(Campaign)

        class Meta:
            table_name = "variant"

    class AbSplit(Base):
        campaign = ForeignKeyField(Campaign, primary_key=True, on_delete="CASCADE")
        last_test_send_id = IntegerField(null=True)
        sample_sends = JSONField(null=True)
        from_start = BooleanField(default=True)

    class AbStat(Base):
        id = IdField()
        campaign = ForeignKeyField(Campaign, on_delete="CASCADE", index=False)
        variant_id = IntegerField(default=0)
        rest = IntegerField(default=0)
        opens_unique = IntegerField(default=0)
        clicks_unique = IntegerField(default=0)
        unsubscribes = IntegerField(default=0)
        complaints = IntegerField(default=0)

        class Meta:
            indexes = ((("campaign", "variant_id", "rest"), True),)

    db.create_tables([AbSplit, AbStat])
    counted_before = (Campaign.select(Campaign.id, Value(False)).where(
        Campaign.started_at.is_null(False) & Campaign.id.in_(Variant.select(Variant.campaign))))
    AbSplit.insert_from(counted_before, [AbSplit.campaign, AbSplit.from_start]).execute()


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "ab_stat"')
    db.execute_sql('DROP TABLE IF EXISTS "ab_split"')
