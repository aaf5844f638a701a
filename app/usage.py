"""Messages sent per team and month, for billing and dashboards: the one place that counts and reads them.

A month is the calendar month in the TEAM's time zone (Team.time_zone): a message sent at 2026-01-31 23:30
UTC by a team in Asia/Tokyo counts for February. Each count is split by stream (marketing: campaigns;
transactional: the API and SMTP submission) and by the From domain, in UsageCount (migration 0065).

The sending engine and the transactional worker count each flush's sent messages (count_sent, one upsert
per flush); the dashboard, the billing meter and the caps read them (usage_for, sent_this_month,
month_breakdown). The older Usage table (UTC months, no split) was copied into UsageCount by 0065.
"""
import datetime
import zoneinfo

from peewee import fn

from app.db import upsert_add
from app.models import Team
from app.models import UsageCount
from app.models import utcnow

UTC = zoneinfo.ZoneInfo("UTC")


def zone_of(team):
    """The team's time zone (a Team, its id, or a zone name); UTC when unknown or invalid."""
    if isinstance(team, zoneinfo.ZoneInfo):
        return team
    name = team if isinstance(team, str) else getattr(team, "time_zone", None)
    if name is None and isinstance(team, int):
        name = Team.select(Team.time_zone).where(Team.id == team).scalar()
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return UTC


def local_now(team, now=None):
    """`now` (naive UTC, default the present) as an aware time in the team's zone."""
    return (now or utcnow()).replace(tzinfo=datetime.timezone.utc).astimezone(zone_of(team))


def month_key(team, now=None):
    """"YYYY-MM" of the team's month at `now` (naive UTC)."""
    return local_now(team, now).strftime("%Y-%m")


def month_bounds(month, team):
    """(start, end) of the month "YYYY-MM" in the team's zone, as naive UTC datetimes (end exclusive)."""
    zone = zone_of(team)
    year, number = (int(part) for part in month.split("-"))
    following = (year + 1, 1) if number == 12 else (year, number + 1)
    start = datetime.datetime(year, number, 1, tzinfo=zone)
    end = datetime.datetime(*following, 1, tzinfo=zone)
    return tuple(moment.astimezone(datetime.timezone.utc).replace(tzinfo=None) for moment in (start, end))


def domain_of(address):
    """The lower-case domain of an address ("" without one)."""
    return str(address or "").rpartition("@")[2].strip().lower()[:255] if "@" in str(address or "") else ""


def count_sent(team_id, sent, now=None, cursor=None, stream="marketing", domain="", zone=None):
    """Add `sent` messages to the team's usage for its month of `now` (on `cursor`, inside the
    caller's transaction, else on a new cursor). `zone`: the team's time zone when the caller knows it
    (else one small query for it).

    An upsert of UsageCount(team, month, stream, domain), so concurrent runs of one team's campaigns add up
    instead of overwriting each other; one prepared statement, as the engine counts on every flush.
    """
    month = month_key(zone if zone is not None else team_id, now)
    upsert_add([UsageCount.team, UsageCount.month, UsageCount.stream, UsageCount.domain],
               UsageCount.messages).run([(team_id, month, stream, (domain or "").lower(), sent)], cursor)


def last_months(months, now=None, team=None):
    """The `months` month keys ending with the current one (in the team's zone; UTC without one), oldest first."""
    local = local_now(team if team is not None else UTC, now)
    year, month = local.year, local.month
    keys = []
    for _ in range(max(int(months), 0)):
        keys.append(f"{year:04d}-{month:02d}")
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    return keys[::-1]


def _team_id(team):
    return getattr(team, "id", team)


def usage_for(team, months=12, now=None):
    """[(month "YYYY-MM", messages sent)] for the last `months` months of the team's calendar, oldest
    first, with 0 for months without sending. `team` is a Team or its id."""
    team_row = team if isinstance(team, Team) else Team.get_or_none(Team.id == team)
    keys = last_months(months, now, team_row)
    if not keys:
        return []
    counts = dict(UsageCount.select(UsageCount.month, fn.SUM(UsageCount.messages))
                  .where((UsageCount.team == _team_id(team)) & (UsageCount.month.between(keys[0], keys[-1])))
                  .group_by(UsageCount.month).tuples())
    return [(key, int(counts.get(key) or 0)) for key in keys]


def sent_this_month(team, now=None):
    """Messages (every stream) the team has sent in the current month of its time zone."""
    return usage_for(team, 1, now)[0][1]


def month_breakdown(team, month):
    """{"marketing": n, "transactional": n, "total": n, "domains": [(domain, marketing, transactional)]} of
    one month, domains by volume."""
    rows = (UsageCount.select(UsageCount.stream, UsageCount.domain, UsageCount.messages)
            .where((UsageCount.team == _team_id(team)) & (UsageCount.month == month)).tuples())
    streams = {"marketing": 0, "transactional": 0}
    domains = {}
    for stream, domain, messages in rows:
        streams[stream] = streams.get(stream, 0) + messages
        per = domains.setdefault(domain, {"marketing": 0, "transactional": 0})
        per[stream] = per.get(stream, 0) + messages
    ordered = sorted(domains.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    return {**streams, "total": sum(streams.values()),
            "domains": [(domain, per["marketing"], per["transactional"]) for domain, per in ordered]}


def months_with_usage(team):
    """Month keys the team has any usage in, newest first."""
    return [month for (month,) in UsageCount.select(UsageCount.month).distinct()
            .where(UsageCount.team == _team_id(team)).order_by(UsageCount.month.desc()).tuples()]
