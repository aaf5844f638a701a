"""Reports: what the campaign report, the team dashboard and the CSV export show.

Opens, clicks and the breakdowns come from the small aggregate tables that
app.reports.rollup keeps up to date (a few hundred rows per campaign at most).
How many messages were sent, delivered and bounced come from
app.campaigns.stats (the send ledger, one GROUP BY over an index), like on
every other page, so the report never disagrees with the campaign page; the
A/B table reads the sample's and the rest's opens and clicks from the events
(while they are kept, see LOFT_EVENT_RETENTION_DAYS).

Rates (the usual definitions):
  delivered          sent - sends that bounced (any kind)
  open rate          unique human opens / delivered
  click rate (CTR)   unique human clicks / delivered
  click-to-open      unique human clicks / unique human opens
  bounce rate        sends that bounced / sent
  complaint rate     complaints / delivered (what Gmail and Yahoo measure, roughly)
"""
import datetime
import zoneinfo

from peewee import JOIN
from peewee import fn

from app.campaigns import stats
from app.contacts.export import neutralise
from app.models import AbSplit
from app.models import AbStat
from app.models import Campaign
from app.models import CampaignStat
from app.models import CampaignState
from app.models import ClientStat
from app.models import Contact
from app.models import CountryStat
from app.models import DomainStat
from app.models import Event
from app.models import HourStat
from app.models import Link
from app.models import LinkStat
from app.models import SendStatus
from app.models import TeamDay
from app.models import Variant
from app.models import automation_email_campaigns
from app.models import utcnow

COUNTERS = ("sent", "bounced_hard", "bounced_soft", "bounced_other", "bounced_unique", "opens_total",
            "opens_machine", "opens_unique", "clicks_total", "clicks_bot", "clicks_unique", "unsubscribes",
            "complaints")

# Gmail and Yahoo (2024 sender requirements): keep spam complaints under 0.1%, never reach 0.3%.
COMPLAINT_WARNING = 0.001
COMPLAINT_LIMIT = 0.003
# Bounces: above 2% a list needs cleaning; at 5% providers start to throttle or block.
BOUNCE_WARNING = 0.02
BOUNCE_LIMIT = 0.05
DASHBOARD_DAYS = 30
TOP = 15  # rows shown per breakdown table (the CSV has them all)

def _ratio(part, whole):
    return part / whole if whole else 0.0


class Numbers(dict):
    """Counters of a campaign or variant, with the derived figures."""

    def __init__(self, row=None):
        super().__init__({name: int((row or {}).get(name) or 0) for name in COUNTERS})
        self.finish()

    def add(self, other):
        for name in COUNTERS:
            self[name] += other[name]
        self.finish()

    def finish(self):
        self["bounced"] = self["bounced_unique"]
        self["delivered"] = max(0, self["sent"] - self["bounced_unique"])
        delivered = self["delivered"]
        self["delivery_rate"] = _ratio(delivered, self["sent"])
        self["bounce_rate"] = _ratio(self["bounced_unique"], self["sent"])
        self["open_rate"] = _ratio(self["opens_unique"], delivered)
        self["click_rate"] = _ratio(self["clicks_unique"], delivered)
        self["click_to_open"] = _ratio(self["clicks_unique"], self["opens_unique"])
        self["unsubscribe_rate"] = _ratio(self["unsubscribes"], delivered)
        self["complaint_rate"] = _ratio(self["complaints"], delivered)


def with_ledger_counts(numbers, counts):
    """Sent, bounced and delivered as app.campaigns.stats counts them (from the send ledger), so the
    report and the dashboard say what the campaign list and the campaign page say; the rates follow."""
    numbers["sent"], numbers["bounced_unique"] = counts["sent"], counts["bounced"]
    numbers.finish()
    return numbers


class CountedAbTest:
    """An A/B campaign's columns from the aggregates, for stats.ab_table: unique opens and clicks,
    unsubscribes and complaints from AbStat; the sample's sends by status from its sends not "sent"
    and each variant's share of it (AbSplit.sample_sends), and the rest of the audience's as what the
    sample leaves of the campaign's (`by_status`, the ledger's counts the report has already): the
    ledger's "sent" rows are never counted one by one."""

    def __init__(self, campaign, split, by_status):
        self.cutoff = split.last_test_send_id
        self.engagement = list(AbStat.select().where(AbStat.campaign == campaign.id))
        self.sample = stats.sample_statuses(campaign.id, self.cutoff, split.sample_sends) if self.cutoff else {}
        self.by_status = by_status

    def numbers(self, variant):
        """The numbers of a test column (`variant`), or of the rest of the audience (None)."""
        if variant is not None:
            by_status = self.sample.get(variant.id, {})
            rows = [row for row in self.engagement if row.variant_id == variant.id and not row.rest]
        else:
            by_status = {status: self.by_status.get(status, 0) - sum(s.get(status, 0) for s in self.sample.values())
                         for status in SendStatus}
            rows = [row for row in self.engagement if row.rest]
        return stats.column_numbers(by_status, opens=sum(row.opens_unique for row in rows),
                                    clicks=sum(row.clicks_unique for row in rows),
                                    unsubscribes=sum(row.unsubscribes for row in rows),
                                    complaints=sum(row.complaints for row in rows))


def counted_ab_test(campaign, by_status):
    """CountedAbTest when the aggregator counted every event of the campaign into AbStat, else None
    (the A/B table is then counted from the ledger and the events)."""
    split = AbSplit.get_or_none(AbSplit.campaign == campaign.id)
    counted = split is not None and split.from_start and (split.sample_sends or not split.last_test_send_id)
    return CountedAbTest(campaign, split, by_status) if counted else None


def campaign_report(campaign):
    """Everything the campaign report shows: message counts from the ledger (app.campaigns.stats),
    opens, clicks and the breakdowns from the aggregates."""
    rows = list(CampaignStat.select().where(CampaignStat.campaign == campaign.id).dicts())
    totals = Numbers()
    by_variant = {}
    for row in rows:
        numbers = Numbers(row)
        totals.add(numbers)
        by_variant[row["variant_id"]] = numbers
    by_status = stats.statuses_for([campaign])[campaign.id]
    with_ledger_counts(totals, stats.numbers_of(by_status, campaign.total))
    variants = list(Variant.select().where(Variant.campaign == campaign.id).order_by(Variant.label))
    ab = campaign.ab_test if variants else {}
    counted = counted_ab_test(campaign, by_status) if variants and ab else None
    ab_table = stats.ab_table(campaign, counted) if variants else None
    if ab_table and counted is None and totals["sent"] and not Event.select().where(
            (Event.campaign_id == campaign.id) & (Event.type == "sent")).exists():
        # The raw events were removed after the retention period: only the per-variant aggregates
        # are left, in which the winner's column includes the rest of the audience.
        ab_table = {"settings": ab, "winner": next((v for v in variants if v.is_winner), None), "merged": True,
                    "columns": [dict(_ab_keys(by_variant.get(v.id, Numbers())), variant=v, part="test",
                                     label=v.label) for v in variants]}
    links = [dict(row, url=row["url"] or "(a link no longer in the campaign)") for row in
             LinkStat.select(LinkStat.link_id, LinkStat.clicks, LinkStat.clicks_unique, Link.url)
             .join(Link, on=(Link.id == LinkStat.link_id), join_type=JOIN.LEFT_OUTER)
             .where(LinkStat.campaign == campaign.id)
             .order_by(LinkStat.clicks_unique.desc(), LinkStat.link_id).dicts()]
    domains = list(DomainStat.select().where(DomainStat.campaign == campaign.id)
                   .order_by(DomainStat.sent.desc(), DomainStat.domain).limit(TOP).dicts())
    domain_count = DomainStat.select().where(DomainStat.campaign == campaign.id).count()
    countries = list(CountryStat.select().where(CountryStat.campaign == campaign.id)
                     .order_by(CountryStat.opened.desc(), CountryStat.clicked.desc(), CountryStat.country)
                     .limit(TOP).dicts())
    for row in countries:
        row["name"] = country_name(row["country"])
    client_rows = list(ClientStat.select().where(ClientStat.campaign == campaign.id)
                       .order_by(ClientStat.opened.desc(), ClientStat.client).dicts())
    devices = {}
    for row in client_rows:
        devices[row["device"]] = devices.get(row["device"], 0) + row["opened"]
    hours = list(HourStat.select(HourStat.hour, HourStat.opens_unique, HourStat.clicks_unique,
                                 HourStat.opens, HourStat.clicks)
                 .where(HourStat.campaign == campaign.id).order_by(HourStat.hour).tuples())
    return {
        "campaign": campaign, "totals": totals, "ab": ab, "ab_table": ab_table,
        "winner": next((v for v in variants if v.is_winner), None),
        "links": links, "domains": domains, "more_domains": max(0, domain_count - len(domains)),
        "countries": countries, "clients": client_rows[:TOP],
        "devices": sorted(devices.items(), key=lambda item: -item[1]),
        "timeline": timeline(hours, campaign.team.time_zone if campaign.team_id else "UTC"),
    }


def _ab_keys(numbers):
    """Aggregate Numbers under the names app.campaigns.stats gives an A/B column."""
    return dict(numbers, opens=numbers["opens_unique"], clicks=numbers["clicks_unique"])


def timeline(hours, time_zone="UTC"):
    """(labels, opens, clicks, unit) per hour, or per day when the hours span more than 3 days, in the
    team's time zone (HourStat keeps UTC hours; each is converted, so DST and half-hour zones come out
    right); the gaps are filled with zeros so the chart's x axis is time."""
    try:
        zone = zoneinfo.ZoneInfo(time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = datetime.timezone.utc
    empty = {"labels": [], "opens": [], "clicks": [], "unit": "hour", "zone": str(time_zone or "UTC")}
    if not hours:
        return empty
    first, last = _hour(hours[0][0]), _hour(hours[-1][0])
    daily = (last - first) > datetime.timedelta(days=3)

    def label(utc_hour):
        local = utc_hour.replace(tzinfo=datetime.timezone.utc).astimezone(zone)
        return local.strftime("%Y-%m-%d") if daily else local.strftime("%Y-%m-%d %H:%M")

    opens, clicks = {}, {}
    for hour, opens_unique, clicks_unique, all_opens, all_clicks in hours:
        key = label(_hour(hour))
        opens[key] = opens.get(key, 0) + all_opens
        clicks[key] = clicks.get(key, 0) + all_clicks
    labels, moment = [], first
    while moment <= last and len(labels) < 2000:  # every UTC hour in between, named in local time
        if not labels or labels[-1] != label(moment):
            labels.append(label(moment))
        moment += datetime.timedelta(hours=1)
    return dict(empty, labels=labels, opens=[opens.get(k, 0) for k in labels],
                clicks=[clicks.get(k, 0) for k in labels], unit="day" if daily else "hour")


def _hour(text):
    return datetime.datetime.strptime(text[:13], "%Y-%m-%d %H")


def country_name(code):
    if not code:
        return "Unknown (or an image proxy)"
    return _ISO_NAMES.get(code, code)


# The countries most mail comes from; others show their ISO code.
_ISO_NAMES = {
    "US": "United States", "GB": "United Kingdom", "DE": "Germany", "FR": "France", "CA": "Canada",
    "AU": "Australia", "NL": "Netherlands", "ES": "Spain", "IT": "Italy", "BR": "Brazil", "IN": "India",
    "JP": "Japan", "SE": "Sweden", "CH": "Switzerland", "BE": "Belgium", "AT": "Austria", "IE": "Ireland",
    "DK": "Denmark", "NO": "Norway", "FI": "Finland", "PL": "Poland", "PT": "Portugal", "MX": "Mexico",
    "NZ": "New Zealand", "SG": "Singapore", "ZA": "South Africa", "CN": "China", "KR": "South Korea",
    "RU": "Russia", "AR": "Argentina", "CZ": "Czechia", "IL": "Israel", "TR": "Turkey", "UA": "Ukraine",
}


# --- Team dashboard -------------------------------------------------------------------

def level(rate, warning, limit):
    """"ok", "warning" or "danger" for a rate against its two thresholds."""
    if rate >= limit:
        return "danger"
    if rate >= warning:
        return "warning"
    return "ok"


def dashboard(team, days=DASHBOARD_DAYS, now=None):
    """Daily totals of the last `days` days, list growth, and the bounce and complaint rates."""
    today = (now or utcnow()).date()
    start = today - datetime.timedelta(days=days - 1)
    rows = {row["day"]: row for row in TeamDay.select().where(
        (TeamDay.team == team) & (TeamDay.day >= start.isoformat())).dicts()}
    labels, series = [], {k: [] for k in ("sent", "opens", "clicks", "bounces", "complaints", "unsubscribes",
                                          "new_contacts")}
    for offset in range(days):
        day = (start + datetime.timedelta(days=offset)).isoformat()
        labels.append(day)
        row = rows.get(day, {})
        for key, values in series.items():
            values.append(int(row.get(key) or 0))
    totals = {key: sum(values) for key, values in series.items()}
    delivered = max(0, totals["sent"] - totals["bounces"])
    bounce_rate = _ratio(totals["bounces"], totals["sent"])
    complaint_rate = _ratio(totals["complaints"], delivered)
    statuses = dict(Contact.select(Contact.status, fn.COUNT(Contact.id)).where(Contact.team == team)
                    .group_by(Contact.status).tuples())
    ever_sent = TeamDay.select().where((TeamDay.team == team) & (TeamDay.sent > 0)).exists()
    return {
        "days": days, "labels": labels, "series": series, "totals": totals, "delivered": delivered,
        "bounce_rate": bounce_rate, "bounce_level": level(bounce_rate, BOUNCE_WARNING, BOUNCE_LIMIT),
        "complaint_rate": complaint_rate,
        "complaint_level": level(complaint_rate, COMPLAINT_WARNING, COMPLAINT_LIMIT),
        "statuses": statuses, "contacts": sum(statuses.values()), "ever_sent": ever_sent,
        "campaigns": recent_campaigns(team),
        "thresholds": {"complaint_warning": COMPLAINT_WARNING, "complaint_limit": COMPLAINT_LIMIT,
                       "bounce_warning": BOUNCE_WARNING, "bounce_limit": BOUNCE_LIMIT},
    }


def recent_campaigns(team, limit=10):
    """The team's latest campaigns that went out, with their headline numbers."""
    campaigns = list(Campaign.select().where((Campaign.team == team) & (Campaign.state != CampaignState.DRAFT)
                                             & Campaign.id.not_in(automation_email_campaigns())
                                             & Campaign.started_at.is_null(False))
                     .order_by(Campaign.started_at.desc(), Campaign.id.desc()).limit(limit))
    numbers = numbers_for(campaigns)
    return [{"campaign": c, "numbers": numbers[c.id]} for c in campaigns]


def numbers_for(campaigns, counts=None):
    """{campaign id: Numbers} for several campaigns in two queries: opens and clicks from the
    aggregates, sent and delivered from the ledger (`counts`: stats.counts_for's, when the caller
    has them already); the rates as the report defines them."""
    campaigns = list(campaigns)
    numbers = {}
    if campaigns:
        for row in (CampaignStat.select().where(CampaignStat.campaign << [c.id for c in campaigns]).dicts()):
            numbers.setdefault(row["campaign"], Numbers()).add(Numbers(row))
    counts = counts if counts is not None else stats.counts_for(campaigns)
    return {c.id: with_ledger_counts(numbers.get(c.id, Numbers()), counts[c.id]) for c in campaigns}


# --- CSV export -----------------------------------------------------------------------

CSV_HEADER = ("section", "item", "metric", "value")


def export_rows(report):
    """The report as (section, item, metric, value) rows, every cell formula-safe."""
    totals = report["totals"]
    rows = [CSV_HEADER]

    def emit(section, item, metric, value):
        if isinstance(value, float):
            value = f"{value:.4f}"
        rows.append(tuple(neutralise(cell) for cell in (section, item, metric, value)))

    for metric in ("sent", "delivered", "bounced", "bounced_hard", "bounced_soft", "bounced_other",
                   "opens_unique", "opens_total", "opens_machine", "clicks_unique", "clicks_total", "clicks_bot",
                   "unsubscribes", "complaints", "delivery_rate", "bounce_rate", "open_rate", "click_rate",
                   "click_to_open", "unsubscribe_rate", "complaint_rate"):
        emit("summary", report["campaign"].name, metric, totals[metric])
    for column in (report["ab_table"] or {}).get("columns", []):
        variant = column["variant"]
        item = column["label"] + (" winner" if variant.is_winner and column["part"] == "test" else "")
        for metric, key in (("sent", "sent"), ("delivered", "delivered"), ("opens_unique", "opens"),
                            ("clicks_unique", "clicks"), ("open_rate", "open_rate"), ("click_rate", "click_rate"),
                            ("click_to_open", "click_to_open"), ("unsubscribes", "unsubscribes"),
                            ("complaints", "complaints")):
            emit("variant", item, metric, column[key])
    for link in report["links"]:
        emit("link", link["url"], "clicks_total", link["clicks"])
        emit("link", link["url"], "clicks_unique", link["clicks_unique"])
    for row in DomainStat.select().where(DomainStat.campaign == report["campaign"].id).order_by(
            DomainStat.sent.desc(), DomainStat.domain).dicts():
        for metric in ("sent", "bounced", "opened", "clicked"):
            emit("domain", row["domain"], metric, row[metric])
    for row in CountryStat.select().where(CountryStat.campaign == report["campaign"].id).order_by(
            CountryStat.opened.desc()).dicts():
        emit("country", row["country"] or "unknown", "opened", row["opened"])
        emit("country", row["country"] or "unknown", "clicked", row["clicked"])
    for row in ClientStat.select().where(ClientStat.campaign == report["campaign"].id).order_by(
            ClientStat.opened.desc()).dicts():
        emit("client", f"{row['client']} / {row['device']}", "opened", row["opened"])
    timeline = report["timeline"]
    for label, opens, clicks in zip(timeline["labels"], timeline["opens"], timeline["clicks"]):
        emit("timeline", label, "opens", opens)
        emit("timeline", label, "clicks", clicks)
    return rows


def export_filename(campaign):
    safe = "".join(ch if ch.isalnum() else "-" for ch in campaign.name.lower()).strip("-")[:40] or "campaign"
    return f"report-{campaign.id}-{safe}.csv"
