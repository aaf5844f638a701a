"""The alerts of a team's monthly email cap: at 80 % and at 100 %, once each per month (a UsageAlert row,
unique per team, month and level, is claimed before the alert goes, so two workers never both send it).
The alerts go to the team's Administrators (alerts.notify with kind usage_80 / usage_100)."""
from peewee import IntegrityError

from app import usage
from app.db import db
from app.models import UsageAlert
from app.notices import alerts

LEVELS = (80, 100)


def _claim(team, month, level, now=None):
    try:
        with db.atomic():
            UsageAlert.create(team=team.id, month=month, level=level, **({"sent_at": now} if now else {}))
        return True
    except IntegrityError:
        return False


def alert_thresholds(team, sent, limit_reached_text, now=None):
    """Alert the team's Administrators of each level of its cap that `sent` (this month's count) has reached
    and that was not alerted this month yet; the levels alerted now. `limit_reached_text` is the 100 % alert's
    text: the gate's own refusal (app/teams/standing.py), so the alert and the refusal say the same."""
    cap = team.monthly_email_cap
    if cap is None:
        return []
    month = usage.month_key(team, now)
    done = []
    for level in LEVELS:
        if sent * 100 < cap * level or not _claim(team, month, level, now):
            continue
        if level == 100:
            subject = f"Monthly email limit reached: {cap:,} emails"
            text = limit_reached_text
        else:
            subject = f"{level} % of the monthly email limit used"
            text = (f"This team has sent {sent:,} of its {cap:,} emails this month ({level} % of the limit set by "
                    "the instance administrator). At the limit, sending stops until next month or until the limit "
                    "is raised.")
        alerts.notify(team.id, subject, text, kind=f"usage_{level}", data={"month": month, "cap": cap, "sent": sent},
                      now=now)
        done.append(level)
    return done
