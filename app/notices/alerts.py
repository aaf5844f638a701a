"""Alerts for a team: an in-app notice, and an email to the team's Administrators.

    notify(team_id, subject, text, kind="alert", campaign_id=None)   store a Notice (returns it)
    email_pending(limit)          the periodic task's job: email the notices not emailed yet
    active(team) / unread_count(team) / dismiss(team, id) / dismiss_all(team) / mark_read(team)

notify() only writes one row, so it is safe anywhere, e.g. on the sending
engine's database thread or right after an outcome was applied: the email
leaves from tasks/notices.py (every minute) through Loft's own mail pipeline
(app/system_mail.py, the instance's outbound SMTP server), never inside the caller's
transaction and never holding up sending. A notice is claimed before its email
is sent (emailed_at set by a conditional UPDATE), so two workers never send it twice.
"""
import logging

from app import system_mail
from app.models import Membership
from app.models import Notice
from app.models import Team
from app.models import User
from app.models import utcnow

log = logging.getLogger(__name__)


def notify(team_id, subject, text, kind="alert", campaign_id=None, data=None, now=None):
    """Store an alert for the team: shown in the app at once, emailed to its Administrators within a minute."""
    team_id = team_id.id if isinstance(team_id, Team) else int(team_id)
    return Notice.create(team=team_id, kind=kind, subject=str(subject)[:300], text=str(text or "")[:5000],
                         campaign_id=campaign_id, data=data or {}, created_at=now or utcnow())


# --- In the app ------------------------------------------------------------------------------

def active(team, limit=50):
    """The team's notices not dismissed, newest first."""
    return list(Notice.select().where((Notice.team == team) & Notice.dismissed_at.is_null())
                .order_by(Notice.id.desc()).limit(limit))


def unread_count(team):
    """Notices not dismissed and not read yet: the number on the bell."""
    if team is None:
        return 0
    return (Notice.select().where((Notice.team == team) & Notice.dismissed_at.is_null() & Notice.read_at.is_null())
            .count())


def get_notice(team, notice_id):
    return Notice.get_or_none((Notice.id == notice_id) & (Notice.team == team))


def mark_read(team, now=None):
    """Everything shown on the notices page counts as read (the bell stops counting them)."""
    (Notice.update(read_at=now or utcnow())
     .where((Notice.team == team) & Notice.read_at.is_null() & Notice.dismissed_at.is_null()).execute())


def dismiss(team, notice_id, now=None):
    """Hide one notice; False when it is not the team's."""
    return bool(Notice.update(dismissed_at=now or utcnow())
                .where((Notice.id == notice_id) & (Notice.team == team) & Notice.dismissed_at.is_null()).execute())


def dismiss_all(team, now=None):
    return (Notice.update(dismissed_at=now or utcnow())
            .where((Notice.team == team) & Notice.dismissed_at.is_null()).execute())


# --- By email --------------------------------------------------------------------------------

def admin_emails(team_id):
    """Addresses of the team's Administrators."""
    return [row[0] for row in User.select(User.email).join(Membership)
            .where((Membership.team == team_id) & (Membership.role == "admin")).order_by(User.id).tuples()]


def email_pending(limit=50, now=None):
    """Email each notice not emailed yet to its team's Administrators. Returns the messages sent.

    A notice whose mail fails is released again (emailed_at back to NULL) and
    tried on the next run; the error is logged.
    """
    now = now or utcnow()
    sent = 0
    pending = list(Notice.select(Notice, Team).join(Team).where(Notice.emailed_at.is_null())
                   .order_by(Notice.id).limit(limit))
    for notice in pending:
        claimed = (Notice.update(emailed_at=now)
                   .where((Notice.id == notice.id) & Notice.emailed_at.is_null()).execute())
        if not claimed:
            continue
        try:
            for address in admin_emails(notice.team_id):
                message = system_mail.compose("alert", address, f"[Loft] {notice.subject}", notice=notice, team=notice.team,
                                       notices_path="/notices",
                                       campaign_path=f"/campaigns/{notice.campaign_id}" if notice.campaign_id else "")
                system_mail.send(**message)
                sent += 1
        except Exception:  # noqa: BLE001 - SMTP down: keep the notice for the next run
            log.exception("notice %s: emailing the administrators failed; will retry", notice.id)
            Notice.update(emailed_at=None).where(Notice.id == notice.id).execute()
    return sent
