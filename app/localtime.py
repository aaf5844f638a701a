"""Times shown to people: in the current team's time zone, and labelled with it.

The database holds naive UTC datetimes. Pages used to print them as they were, some
marked "UTC" and some not, next to scheduling that speaks the team's zone. Every
template now formats a stored time with the `local_time` filter (date and time with
the zone's abbreviation, e.g. "2026-03-29 14:05 CEST") or `local_date` (the date in
the team's zone). Outside a request, or without a team, the zone is UTC.
"""
import datetime
import zoneinfo

from flask import g
from flask import has_app_context

UTC = zoneinfo.ZoneInfo("UTC")


def team_zone():
    team = g.get("team") if has_app_context() else None
    try:
        return zoneinfo.ZoneInfo(getattr(team, "time_zone", None) or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return UTC


def to_local(value, zone=None):
    """A stored UTC time (naive datetime, or its ISO text, optionally ending in " UTC") in the zone."""
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value.strip().removesuffix("UTC").strip())
        except ValueError:
            return None
    if not isinstance(value, datetime.datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(zone or team_zone())


def zone_label(local):
    """The zone's abbreviation (CET, EDT, IST); zones without one ('-03') read as UTC-03."""
    name = local.tzname() or "UTC"
    return f"UTC{name}" if name[0] in "+-" else name


def local_time(value, fmt="%Y-%m-%d %H:%M", zone=None):
    """'2026-03-29 14:05 CEST' for a stored UTC time; '' for none. Text that is not a time stays as it is."""
    if value is None or value == "":
        return ""
    local = to_local(value, zone)
    if local is None:
        return value
    return f"{local.strftime(fmt)} {zone_label(local)}"


def local_date(value, zone=None):
    """The date, in the team's zone, of a stored UTC time (a plain date stays as it is)."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value.isoformat()
    local = to_local(value, zone)
    return local.strftime("%Y-%m-%d") if local is not None else value


def iso_utc(value):
    """The machine-readable form for <time datetime>: ISO 8601 in UTC with its Z."""
    local = to_local(value, UTC)
    return local.strftime("%Y-%m-%dT%H:%M:%SZ") if local is not None else ""


def init_app(app):
    app.jinja_env.filters.update(local_time=local_time, local_date=local_date, iso_utc=iso_utc)
