"""The campaign calendar: a month of scheduled and sent campaigns, each on its day in the team's time zone.

A campaign's day is the day it went out (started_at) or, while scheduled, the day it is due
(scheduled_at), both stored in UTC: the month's bounds are the team's local midnights turned into
UTC, and each campaign's day is its time turned back into the team's zone, so a campaign sent at
23:30 UTC shows on the next day in Berlin and on the same day in New York.
"""
import calendar
import datetime
import re
import zoneinfo
from dataclasses import dataclass
from dataclasses import field

from app.campaigns import states
from app.errors import Problem
from app.models import Campaign
from app.models import CampaignState
from app.models import automation_email_campaigns

MONTH = re.compile(r"^(\d{4})-(\d{2})$")
FIRST_YEAR, LAST_YEAR = 2000, 2100
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class CalendarError(Problem):
    pass


@dataclass
class Entry:
    campaign: Campaign
    at: datetime.datetime  # in the team's zone
    scheduled: bool  # due, not sent yet

    @property
    def label(self):
        return states.LABELS.get(self.campaign.state, self.campaign.state)


@dataclass
class Month:
    first: datetime.date
    today: datetime.date
    weeks: list  # [[(date, [Entry, ...]), ... 7], ...], Monday first; days of other months have no entries
    days: list = field(default_factory=list)  # [(date, [Entry, ...])] of the days with entries: the agenda

    @property
    def title(self):
        return self.first.strftime("%B %Y")

    @property
    def previous(self):
        return (self.first - datetime.timedelta(days=1)).strftime("%Y-%m")

    @property
    def next(self):
        return (self.first + datetime.timedelta(days=32)).replace(day=1).strftime("%Y-%m")

    @property
    def count(self):
        return sum(len(entries) for _day, entries in self.days)


def zone_of(team):
    try:
        return zoneinfo.ZoneInfo(team.time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def parse_month(text, today):
    """The first day of the month named 'YYYY-MM' (this month when empty), or CalendarError."""
    text = (text or "").strip()
    if not text:
        return today.replace(day=1)
    match = MONTH.match(text)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise CalendarError("Give the month as year and month, such as 2026-12.", field="month")
    year = int(match.group(1))
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise CalendarError(f"Choose a month between {FIRST_YEAR} and {LAST_YEAR}.", field="month")
    return datetime.date(year, int(match.group(2)), 1)


def _utc(day, zone):
    """The local midnight starting `day`, as the naive UTC datetime the database stores."""
    local = datetime.datetime.combine(day, datetime.time(), tzinfo=zone)
    return local.astimezone(datetime.timezone.utc).replace(tzinfo=None)


def month_view(team, first, now):
    """The Month starting at `first` (a date) for the team; `now` (naive UTC) marks today."""
    zone = zone_of(team)
    today = now.replace(tzinfo=datetime.timezone.utc).astimezone(zone).date()
    following = (first + datetime.timedelta(days=32)).replace(day=1)
    start, end = _utc(first, zone), _utc(following, zone)
    went_out = (Campaign.started_at >= start) & (Campaign.started_at < end)
    due = (Campaign.state == CampaignState.SCHEDULED) & (Campaign.scheduled_at >= start) & (Campaign.scheduled_at < end)
    by_day = {}
    hidden = automation_email_campaigns()
    for campaign in Campaign.select().where((Campaign.team == team) & (went_out | due) & Campaign.id.not_in(hidden)):
        scheduled = campaign.state == CampaignState.SCHEDULED and campaign.scheduled_at is not None
        moment = campaign.scheduled_at if scheduled else campaign.started_at
        local = moment.replace(tzinfo=datetime.timezone.utc).astimezone(zone)
        if local.date().replace(day=1) != first:
            continue
        by_day.setdefault(local.date(), []).append(Entry(campaign, local, scheduled))
    for entries in by_day.values():
        entries.sort(key=lambda entry: (entry.at, entry.campaign.id))
    weeks = [[(day, by_day.get(day, []) if day.month == first.month else []) for day in week]
             for week in calendar.Calendar(firstweekday=0).monthdatescalendar(first.year, first.month)]
    return Month(first=first, today=today, weeks=weeks, days=sorted(by_day.items()))
