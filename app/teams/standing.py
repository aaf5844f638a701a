"""May this team send now? The ONE gate every place mail leaves for a team asks (campaign launch and
schedule, the sending engine before each batch, the transactional API and SMTP submission).

    sending_refusal(team, stream="marketing")  None when the team may send; else the reason in words:
                                                suspended by the instance administrator (with their
                                                reason), or its monthly email cap reached
    suspend(team, reason, by_user)              the instance administrator's lever against abuse: nothing
                                                leaves for the team, its sending campaigns pause with the
                                                reason (state_reason, shown on the campaign page)
    resume(team)                                lifts the suspension. Campaigns paused by it are NOT resumed
                                                by Loft: the team looks at them and resumes them itself (the
                                                pause reason says so), since a suspension usually means
                                                something in them needed fixing.

The cap counts every stream (marketing and transactional) in the team's calendar month (app/usage.py).
"""
import datetime
import logging

from app.billing import caps
from app.campaigns import states
from app.db import db
from app.models import Campaign
from app.models import CampaignState
from app.models import Team
from app.models import utcnow
from app import usage
from app.errors import Problem

log = logging.getLogger(__name__)

SUSPENDED_PREFIX = "Paused: this team is suspended by the instance administrator"
MAX_REASON = 1000


class StandingError(Problem):
    """A suspension or cap refused (no reason given, a cap that is not a whole number), in words."""


def _team(team):
    return team if isinstance(team, Team) else Team.get_or_none(Team.id == int(team))


def suspension_reason(team):
    """The words shown for a suspended team ('' when it is not suspended)."""
    if team.suspended_at is None:
        return ""
    why = (team.suspended_reason or "").strip()
    return ("This team is suspended by the instance administrator"
            + (f": {why}" if why else ".") + ("" if not why or why.endswith(".") else ".")
            + " Nothing is sent until they resume it.")


def next_month_start(team, now=None):
    """The first day of the team's next month, as a date in its zone."""
    local = usage.local_now(team, now)
    return datetime.date(local.year + 1, 1, 1) if local.month == 12 else datetime.date(local.year, local.month + 1, 1)


def cap_reason(team, now=None, sent=None):
    """The words for a team at or over its monthly cap, else ''."""
    cap = team.monthly_email_cap
    if cap is None:
        return ""
    if (usage.sent_this_month(team, now) if sent is None else sent) < cap:
        return ""
    first = next_month_start(team, now)
    return (f"This team has reached its monthly limit of {cap:,} emails set by the instance administrator; "
            f"sending resumes on {first:%-d %B %Y} ({team.time_zone or 'UTC'}) or when the limit is raised.")


def sending_refusal(team, stream="marketing", now=None):
    """None when the team may send now; else why not, in words for the person or the API client.
    `team`: a Team or its id. `stream`: marketing or transactional (both count against the cap)."""
    return allowance(team, now)[0]


def room_left(team, now=None):
    """Messages the team may still send this month under its cap (None = no cap); 0 while suspended."""
    return allowance(team, now)[1]


def allowance(team, now=None):
    """(refusal or None, messages left this month under the cap or None without a cap): what the engine
    asks before each batch, in two small queries. Crossing 80 % or 100 % of the cap alerts the team's
    Administrators, once a month each (app/billing/caps.py)."""
    row = _team(team)
    if row is None:
        return "This team no longer exists.", 0
    if row.suspended_at is not None:
        return suspension_reason(row), 0
    if row.monthly_email_cap is None:
        return None, None
    sent = usage.sent_this_month(row, now)
    caps.alert_thresholds(row, sent, cap_reason(row, now, sent), now)
    if sent >= row.monthly_email_cap:
        return cap_reason(row, now, sent), 0
    return None, row.monthly_email_cap - sent


def pause_sending(team_id, reason):
    """Pause the team's sending campaigns with `reason` (state_reason); the ids paused."""
    paused = []
    for campaign in Campaign.select().where((Campaign.team == team_id) & (Campaign.state == CampaignState.SENDING)):
        try:
            states.transition(campaign, CampaignState.PAUSED, reason=reason)
        except states.TransitionError:
            continue  # paused, cancelled or completed meanwhile
        paused.append(campaign.id)
        log.warning("campaign %s paused: %s", campaign.id, reason)
    return paused


def suspend(team, reason, by_user=None):
    """Suspend the team: nothing leaves for it; its sending campaigns pause. The ids paused."""
    reason = " ".join(str(reason or "").split())
    if not reason:
        raise StandingError("Say why the team is suspended: its members see the reason.")
    if len(reason) > MAX_REASON:
        raise StandingError(f"Keep the reason under {MAX_REASON:,} characters.")
    row = _team(team)
    with db.atomic():
        Team.update(suspended_at=utcnow(), suspended_reason=reason,
                    suspended_by_id=getattr(by_user, "id", by_user)).where(Team.id == row.id).execute()
        paused = pause_sending(row.id, f"{SUSPENDED_PREFIX}: {reason} Once it is resumed, resume this "
                                       "campaign yourself.")
    row.suspended_at, row.suspended_reason = utcnow(), reason
    return paused


def resume(team):
    """Lift the suspension. The campaigns it paused stay paused: the team resumes them itself."""
    row = _team(team)
    Team.update(suspended_at=None, suspended_reason="", suspended_by_id=None).where(Team.id == row.id).execute()
    row.suspended_at, row.suspended_reason, row.suspended_by_id = None, "", None
    return row


def set_cap(team, cap):
    """Set the team's monthly email cap: a whole number of emails, or None/'' for no cap."""
    row = _team(team)
    if cap is None or str(cap).strip() == "":
        value = None
    else:
        try:
            value = int(str(cap).strip().replace(",", "").replace("_", ""))
        except ValueError:
            raise StandingError("Give the monthly limit as a whole number of emails, such as 50000, "
                                "or leave it empty for no limit.") from None
        if value < 0 or value > 2_000_000_000:
            raise StandingError("The monthly limit is between 0 and 2,000,000,000 emails.")
    Team.update(monthly_email_cap=value).where(Team.id == row.id).execute()
    row.monthly_email_cap = value
    return row
