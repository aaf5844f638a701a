"""Report aggregates: small tables the report pages read.

app/reports/rollup.py reads new Event rows by id (its cursor in report_cursor,
advanced in the same transaction as the upserts) and adds them up here with
INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE, so a report page
reads a few hundred rows whatever the number of events, and raw events past
the retention setting can be deleted while the daily totals stay.

send_mark / link_mark remember the first human open, click and bounce of
each send (and the first click of each link per send): the unique counts.
"""
from peewee import CharField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import Model
from peewee import SQL


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Team(Base):
        class Meta:
            table_name = "team"

    class Campaign(Base):
        class Meta:
            table_name = "campaign"

    class Send(Base):
        class Meta:
            table_name = "send"

    class ReportCursor(Base):
        name = CharField(unique=True)  # "events", "contacts"
        last_id = IntegerField(default=0)

    class CampaignStat(Base):
        campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
        variant_id = IntegerField(default=0)  # 0: no A/B variant
        sent = IntegerField(default=0)
        bounced_hard = IntegerField(default=0)
        bounced_soft = IntegerField(default=0)
        bounced_other = IntegerField(default=0)  # policy blocks, our own auth failures, account limits
        bounced_unique = IntegerField(default=0)  # sends with at least one bounce: sent - this = delivered
        opens_total = IntegerField(default=0)  # human-likely opens
        opens_machine = IntegerField(default=0)  # privacy-proxy prefetches and the like
        opens_unique = IntegerField(default=0)
        clicks_total = IntegerField(default=0)  # human-likely clicks
        clicks_bot = IntegerField(default=0)  # link scanners
        clicks_unique = IntegerField(default=0)
        unsubscribes = IntegerField(default=0)
        complaints = IntegerField(default=0)

        class Meta:
            indexes = ((("campaign", "variant_id"), True),)

    class HourStat(Base):
        campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
        hour = CharField()  # "YYYY-MM-DD HH" in UTC
        opens = IntegerField(default=0)
        clicks = IntegerField(default=0)
        opens_unique = IntegerField(default=0)
        clicks_unique = IntegerField(default=0)

        class Meta:
            indexes = ((("campaign", "hour"), True),)

    class LinkStat(Base):
        campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
        link_id = IntegerField()
        clicks = IntegerField(default=0)
        clicks_unique = IntegerField(default=0)

        class Meta:
            indexes = ((("campaign", "link_id"), True),)

    class DomainStat(Base):
        campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
        domain = CharField()
        sent = IntegerField(default=0)
        bounced = IntegerField(default=0)
        opened = IntegerField(default=0)
        clicked = IntegerField(default=0)

        class Meta:
            indexes = ((("campaign", "domain"), True),)

    class CountryStat(Base):
        campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
        country = CharField()  # ISO 3166 code; "" when unknown
        opened = IntegerField(default=0)
        clicked = IntegerField(default=0)

        class Meta:
            indexes = ((("campaign", "country"), True),)

    class ClientStat(Base):
        campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
        client = CharField()
        device = CharField()
        opened = IntegerField(default=0)

        class Meta:
            indexes = ((("campaign", "client", "device"), True),)

    class TeamDay(Base):
        team = ForeignKeyField(Team, on_delete="CASCADE")
        day = CharField()  # "YYYY-MM-DD" in UTC
        sent = IntegerField(default=0, constraints=[SQL("DEFAULT 0")])
        opens = IntegerField(default=0, constraints=[SQL("DEFAULT 0")])  # unique human opens first seen that day
        clicks = IntegerField(default=0, constraints=[SQL("DEFAULT 0")])
        bounces = IntegerField(default=0, constraints=[SQL("DEFAULT 0")])
        complaints = IntegerField(default=0, constraints=[SQL("DEFAULT 0")])
        unsubscribes = IntegerField(default=0, constraints=[SQL("DEFAULT 0")])
        new_contacts = IntegerField(default=0, constraints=[SQL("DEFAULT 0")])

        class Meta:
            indexes = ((("team", "day"), True),)

    class SendMark(Base):
        send = ForeignKeyField(Send, primary_key=True, on_delete="CASCADE")
        opened_id = IntegerField(null=True)  # the Event id of the first human open
        clicked_id = IntegerField(null=True)
        bounced_id = IntegerField(null=True)

    class LinkMark(Base):
        send = ForeignKeyField(Send, on_delete="CASCADE", index=False)
        link_id = IntegerField()
        event_id = IntegerField()

        class Meta:
            indexes = ((("send", "link_id"), True),)

    db.create_tables([ReportCursor, CampaignStat, HourStat, LinkStat, DomainStat, CountryStat, ClientStat,
                      TeamDay, SendMark, LinkMark])


def down(migrator, db):
    for table in ("link_mark", "send_mark", "team_day", "client_stat", "country_stat", "domain_stat",
                  "link_stat", "hour_stat", "campaign_stat", "report_cursor"):
        db.execute_sql(f'DROP TABLE IF EXISTS "{table}"')
