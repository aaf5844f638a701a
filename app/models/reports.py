"""Reports: aggregates fed by app/reports/rollup.py, and the health probe."""
from peewee import BooleanField
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField

from app.db import BaseModel
from app.db import JSONField
from app.db import server_default
from app.models.campaigns import Campaign
from app.models.campaigns import Send
from app.models.common import utcnow
from app.models.teams import Team


class ReportCursor(BaseModel):
    """How far an aggregator has read a table by id ("events", "contacts")."""
    name = CharField(unique=True)
    last_id = IntegerField(default=0)


class CampaignStat(BaseModel):
    """Counters of one campaign and A/B variant (variant_id 0: none)."""
    campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
    variant_id = IntegerField(default=0)
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


class HourStat(BaseModel):
    campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
    hour = CharField()  # "YYYY-MM-DD HH" in UTC
    opens = IntegerField(default=0)
    clicks = IntegerField(default=0)
    opens_unique = IntegerField(default=0)
    clicks_unique = IntegerField(default=0)

    class Meta:
        indexes = ((("campaign", "hour"), True),)


class LinkStat(BaseModel):
    campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
    link_id = IntegerField()
    clicks = IntegerField(default=0)
    clicks_unique = IntegerField(default=0)

    class Meta:
        indexes = ((("campaign", "link_id"), True),)


class DomainStat(BaseModel):
    campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
    domain = CharField()
    sent = IntegerField(default=0)
    bounced = IntegerField(default=0)
    opened = IntegerField(default=0)
    clicked = IntegerField(default=0)

    class Meta:
        indexes = ((("campaign", "domain"), True),)


class CountryStat(BaseModel):
    campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
    country = CharField()  # ISO 3166 code; "" when unknown
    opened = IntegerField(default=0)
    clicked = IntegerField(default=0)

    class Meta:
        indexes = ((("campaign", "country"), True),)


class ClientStat(BaseModel):
    campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
    client = CharField()
    device = CharField()
    opened = IntegerField(default=0)

    class Meta:
        indexes = ((("campaign", "client", "device"), True),)


class TeamDay(BaseModel):
    """A team's daily totals (UTC days): they outlive the raw events (retention)."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    day = CharField()  # "YYYY-MM-DD"
    sent = IntegerField(default=0, constraints=[server_default(0)])
    opens = IntegerField(default=0, constraints=[server_default(0)])  # unique human opens first seen that day
    clicks = IntegerField(default=0, constraints=[server_default(0)])
    bounces = IntegerField(default=0, constraints=[server_default(0)])
    complaints = IntegerField(default=0, constraints=[server_default(0)])
    unsubscribes = IntegerField(default=0, constraints=[server_default(0)])
    new_contacts = IntegerField(default=0, constraints=[server_default(0)])

    class Meta:
        indexes = ((("team", "day"), True),)


class ContactCount(BaseModel):
    """A team's contacts, counted by the report aggregator's minute task (migration 0046): the dashboard
    reads this row instead of counting a million contacts per page view."""
    team = ForeignKeyField(Team, unique=True, on_delete="CASCADE")
    total = IntegerField(default=0)
    active = IntegerField(default=0)
    counted_at = DateTimeField(default=utcnow)


class AbSplit(BaseModel):
    """Where the aggregator splits an A/B campaign's sends (migration 0056): the test sample is the sends
    up to last_test_send_id (app.campaigns.stats.sample_cutoff, the rule applied at publish), the rest
    of the audience the sends after it; sample_sends, how many sends of the sample each variant has
    (the report counts the sample's other statuses and gives "sent" the rest). Written when the
    aggregator first meets the campaign's events.
    from_start: every event of the campaign was counted into AbStat (False for the campaigns counted
    before AbStat existed: their A/B table is counted from the events)."""
    campaign = ForeignKeyField(Campaign, primary_key=True, on_delete="CASCADE")
    last_test_send_id = IntegerField(null=True)
    sample_sends = JSONField(null=True)  # {variant id: sends of the sample}, fixed once the sample is split
    from_start = BooleanField(default=True)


class AbStat(BaseModel):
    """An A/B campaign's unique opens and clicks, unsubscribes and complaints per variant, the test
    sample (rest 0) apart from the rest of the audience (rest 1), which got the winner after the test."""
    campaign = ForeignKeyField(Campaign, on_delete="CASCADE", index=False)
    variant_id = IntegerField(default=0)
    rest = IntegerField(default=0)
    opens_unique = IntegerField(default=0)
    clicks_unique = IntegerField(default=0)
    unsubscribes = IntegerField(default=0)
    complaints = IntegerField(default=0)

    class Meta:
        indexes = ((("campaign", "variant_id", "rest"), True),)


class SendMark(BaseModel):
    """The first human open, click and bounce of a send (Event ids): the unique counts."""
    send = ForeignKeyField(Send, primary_key=True, on_delete="CASCADE")
    opened_id = IntegerField(null=True)
    clicked_id = IntegerField(null=True)
    bounced_id = IntegerField(null=True)


class LinkMark(BaseModel):
    """The first human click of a link by a send: unique clicks per link."""
    send = ForeignKeyField(Send, on_delete="CASCADE", index=False)
    link_id = IntegerField()
    event_id = IntegerField()

    class Meta:
        indexes = ((("send", "link_id"), True),)


class HealthProbe(BaseModel):
    """One row (id 1) that /health rewrites: proof the database takes writes (migration 0033)."""
    checked_at = DateTimeField(null=True)
