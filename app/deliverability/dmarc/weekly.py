"""The weekly DMARC digest email to the members of each team who want it (the `dmarc_digest` event of
app/notices/preferences.py: its Administrators unless they opt out, anyone who opts in; Loft's own mail).

    send_weekly(today=None) -> messages sent

A team gets one email a week when its reports cover any message of the last 7 days: per domain the
messages, the DMARC pass rate, SPF and DKIM aligned counts and the top failing sources, with a link
to the digest page. A failed send is logged and the other teams still get theirs.
"""
import datetime
import logging

from app import system_mail
from app.deliverability.dmarc import digest
from app.models import DmarcRecord
from app.models import Team
from app.notices import preferences

DAYS = 7
log = logging.getLogger(__name__)


def teams_with_reports(since):
    return list(Team.select().where(Team.id.in_(
        DmarcRecord.select(DmarcRecord.team).where(DmarcRecord.day >= since).distinct())).order_by(Team.id))


def week_of(team, today):
    """[digest per domain] of the 7 days before `today`, domains with messages only."""
    names = sorted({row.domain for row in DmarcRecord.select(DmarcRecord.domain)
                    .where((DmarcRecord.team == team.id) & (DmarcRecord.day >= today - datetime.timedelta(days=DAYS)))})
    weeks = [digest.digest(team, name, DAYS, today=today - datetime.timedelta(days=1), lookup=False) for name in names]
    return [week for week in weeks if week and week["totals"]["messages"]]


def send_weekly(today=None):
    today = today or datetime.date.today()
    sent = 0
    for team in teams_with_reports(today - datetime.timedelta(days=DAYS)):
        weeks = week_of(team, today)
        if not weeks:
            continue
        failing = sum(week["totals"]["failed"] for week in weeks)
        subject = (f"[Loft] DMARC this week: {len(weeks)} domain{'s' if len(weeks) != 1 else ''}, "
                   f"{failing:,} message{'s' if failing != 1 else ''} failing")
        for address in preferences.email_recipients(team.id, "dmarc_digest"):
            try:
                system_mail.send(**system_mail.compose("dmarc_weekly", address, subject, team=team, weeks=weeks))
                sent += 1
            except Exception:  # noqa: BLE001 - SMTP down: this week's digest is skipped, not the other teams'
                log.exception("weekly DMARC digest for team %s to %s failed", team.id, address)
    return sent
