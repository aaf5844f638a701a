"""Campaign times in the team's time zone: a schedule parsed and checked, and the scheduled ones now due."""
import datetime
import zoneinfo

from app.campaigns.errors import CampaignError
from app.models import Campaign
from app.models import CampaignState
from app.models import utcnow


def parse_schedule(team, local_value):
    """'2026-12-01T09:30' in the team's time zone → naive UTC datetime, or CampaignError."""
    try:
        local = datetime.datetime.fromisoformat(local_value)
    except (TypeError, ValueError):
        raise CampaignError("Enter a date and time, such as 2026-12-01 09:30.", field="scheduled_at")
    zone = zoneinfo.ZoneInfo(team.time_zone or "UTC")
    return check_schedule(team, local.replace(tzinfo=zone).astimezone(datetime.timezone.utc).replace(tzinfo=None))


def check_schedule(team, moment):
    """`moment` (naive UTC) if it is still to come, else CampaignError at scheduled_at."""
    if moment <= utcnow():
        raise CampaignError(f"That time has passed in {team.time_zone}. Pick a later one, or send now.",
                            field="scheduled_at")
    return moment


def local_time(team, utc_value):
    if utc_value is None:
        return None
    zone = zoneinfo.ZoneInfo(team.time_zone or "UTC")
    return utc_value.replace(tzinfo=datetime.timezone.utc).astimezone(zone)


def moment_in_words(team, utc_value, now=None):
    """'today 18:00', 'tomorrow 09:00' or 'on 2026-12-03 09:00', in the team's time zone."""
    local, today = local_time(team, utc_value), local_time(team, now or utcnow()).date()
    day = {today: "today", today + datetime.timedelta(days=1): "tomorrow"}.get(local.date())
    return f"{day} {local:%H:%M}" if day else f"on {local:%Y-%m-%d %H:%M}"


def due_scheduled(now=None):
    """Scheduled campaigns whose time has come (the periodic task starts them)."""
    now = now or utcnow()
    return list(Campaign.select().where((Campaign.state == CampaignState.SCHEDULED) & (Campaign.scheduled_at <= now)))
