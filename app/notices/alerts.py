"""Alerts for a team: an in-app notice, and an email to the members who want it (app/notices/preferences.py:
by default the team's Administrators).

    notify(team_id, subject, text, kind="alert", campaign_id=None)   store a Notice (returns it); `kind` is an
                                  event of preferences.EVENTS (older kinds are mapped there)
    email_pending(limit)          the periodic task's job: email the notices not emailed yet
    active(team, user) / unread_count(team, user) / dismiss(team, id) / dismiss_all(team) / mark_read(team, user)
                                  with a user: only the kinds that person wants to see in the app

notify() only writes one row, so it is safe anywhere, e.g. on the sending
engine's database thread or right after an outcome was applied: the email
leaves from tasks/notices.py (every minute) through Loft's own mail pipeline
(app/system_mail.py, the instance's outbound SMTP server), never inside the caller's
transaction and never holding up sending. A notice is claimed before its email
is sent (emailed_at set by a conditional UPDATE), so two workers never send it twice.
"""
import logging
import re

from app import system_mail
from app.notices import preferences
from app.models import Automation
from app.models import AutomationStep
from app.models import Campaign
from app.models import Notice
from app.models import Team
from app.models import utcnow

log = logging.getLogger(__name__)


def notify(team_id, subject, text, kind="alert", campaign_id=None, data=None, now=None):
    """Store an alert for the team: shown in the app at once, emailed within a minute to those who want it.

    A campaign an automation's email step sends through (app/automations/mail.py) is nobody's campaign to open: the
    notice names the automation and the step instead, and links to the automation (data["automation"])."""
    team_id = team_id.id if isinstance(team_id, Team) else int(team_id)
    subject, text, campaign_id, data = _about_automations(str(subject), str(text or ""), campaign_id, dict(data or {}))
    return Notice.create(team=team_id, kind=kind, subject=subject[:300], text=text[:5000],
                         campaign_id=campaign_id, data=data, created_at=now or utcnow())


def _email_steps(campaign_ids):
    """{campaign id: (campaign name, words for its step and automation, automation id, step id)} of the hidden
    campaigns among `campaign_ids`."""
    ids = [int(i) for i in campaign_ids if isinstance(i, int) and not isinstance(i, bool)]
    if not ids:
        return {}
    rows = (AutomationStep.select(AutomationStep.campaign, AutomationStep.id, AutomationStep.config, Automation.id,
                                  Automation.name, Campaign.name)
            .join(Automation, on=(AutomationStep.automation == Automation.id))
            .switch(AutomationStep).join(Campaign, on=(AutomationStep.campaign == Campaign.id))
            .where(AutomationStep.campaign.in_(ids)).tuples())
    found = {}
    for campaign_id, step_id, config, automation_id, automation_name, campaign_name in rows:
        config = config if isinstance(config, dict) else {}
        email_subject = str(config.get("subject") or "").strip()[:80]
        words = (f"the email “{email_subject}” of the automation “{automation_name}”" if email_subject
                 else f"an email step of the automation “{automation_name}”")
        found[campaign_id] = (campaign_name, words, automation_id, step_id)
    return found


def step_words(text):
    """A pause reason written for a campaign ("…, then resume the campaign."), as it reads on an automation's email
    step, whose Resume button is "Resume sending"."""
    return re.sub(r"\b([Rr])esume the campaign\b", r"\1esume sending", text)


def _about_automations(subject, text, campaign_id, data):
    steps = _email_steps([campaign_id] + list(data.get("campaigns") or []))
    if not steps:
        return subject, text, campaign_id, data
    for name, words, _automation, _step in steps.values():
        text = text.replace(f"“{name}”", words)
    if campaign_id in steps:
        name, words, automation_id, step_id = steps[campaign_id]
        subject = f"Emails on hold: {words}"
        text = (f"Loft stopped sending {words}. Its emails wait, and so do contacts who reach the step, until it "
                f"sends again: fix the cause, then use “Resume sending” on the step in the automation.\n\n"
                f"{step_words(text)}")
        data.update(automation=automation_id, step=step_id)
        campaign_id = None
    else:
        data["automations"] = sorted({automation_id for _n, _w, automation_id, _s in steps.values()})
    return subject, text, campaign_id, data


# --- In the app ------------------------------------------------------------------------------

def _for(team, user, role=None):
    """The team's notices, narrowed to what `user` wants in the app when one is given (`role`: theirs in the team,
    when the caller knows it, saving a query on every page's bell)."""
    where = Notice.team == team
    if user is not None:
        where &= preferences.in_app_condition(user, team, role)
    return where


def active(team, user=None, limit=50, role=None):
    """The team's notices not dismissed (those `user` wants in the app), newest first."""
    return list(Notice.select().where(_for(team, user, role) & Notice.dismissed_at.is_null())
                .order_by(Notice.id.desc()).limit(limit))


def unread_count(team, user=None, role=None):
    """Notices not dismissed and not read yet (those `user` wants in the app): the number on the bell."""
    if team is None:
        return 0
    return (Notice.select().where(_for(team, user, role) & Notice.dismissed_at.is_null() & Notice.read_at.is_null())
            .count())


def get_notice(team, notice_id):
    return Notice.get_or_none((Notice.id == notice_id) & (Notice.team == team))


def mark_read(team, user=None, now=None, role=None):
    """Everything shown on the notices page counts as read (the bell stops counting them)."""
    (Notice.update(read_at=now or utcnow())
     .where(_for(team, user, role) & Notice.read_at.is_null() & Notice.dismissed_at.is_null()).execute())


def dismiss(team, notice_id, now=None):
    """Hide one notice; False when it is not the team's."""
    return bool(Notice.update(dismissed_at=now or utcnow())
                .where((Notice.id == notice_id) & (Notice.team == team) & Notice.dismissed_at.is_null()).execute())


def dismiss_all(team, now=None):
    return (Notice.update(dismissed_at=now or utcnow())
            .where((Notice.team == team) & Notice.dismissed_at.is_null()).execute())


# --- By email --------------------------------------------------------------------------------

def email_pending(limit=50, now=None):
    """Email each notice not emailed yet to the team's members who want its kind by email (by default its
    Administrators; app/notices/preferences.py). Returns the messages sent.

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
        event = preferences.EVENTS[preferences.event_of(notice.kind)]
        try:
            for address in preferences.email_recipients(notice.team_id, notice.kind):
                message = system_mail.compose("alert", address, f"[Loft] {notice.subject}", notice=notice, team=notice.team,
                                       notices_path="/notices", event=event,
                                       preferences_path=f"/notices/preferences?team={notice.team_id}",
                                       campaign_path=f"/campaigns/{notice.campaign_id}" if notice.campaign_id else "",
                                       automation_path=_automation_path(notice))
                system_mail.send(**message)
                sent += 1
        except Exception:  # noqa: BLE001 - SMTP down: keep the notice for the next run
            log.exception("notice %s: emailing the team failed; will retry", notice.id)
            Notice.update(emailed_at=None).where(Notice.id == notice.id).execute()
    return sent


def _automation_path(notice):
    """The automation a notice is about (an email step's mail on hold), for the email's link; "" for none."""
    automation_id = (notice.data or {}).get("automation") if isinstance(notice.data, dict) else None
    return f"/automations/{automation_id}" if isinstance(automation_id, int) else ""
