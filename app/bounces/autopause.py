"""Auto-pause: a sending campaign stops itself when too many of its messages bounce or draw complaints.

    check_campaign(campaign, now=None)   compute the rates in SQL; pause (states.transition, with the
                                         reason in Campaign.state_reason, shown on the campaign page)
                                         and alert once (alerts.notify, kind "autopause")
    check_soon(campaign_id)              the same, at most every AUTOPAUSE_CHECK_SECONDS per campaign
    after_flush(campaign_id)             the engine's hook (its database thread, after each result write)
    after_outcomes(results)              outcomes.apply's hook (bounces and complaints from the mailbox
                                         or provider webhooks)
    after_completion(campaign_id)        the engine's hook when a campaign completes

A campaign that completed before a check could pause it (the last batch, or bounces
and complaints arriving by mail afterwards) is not paused: nothing is left to stop.
Its admins still get one notice (kind "rates") saying it crossed the line, so the
next campaign to that audience is not sent blind.

Rates, over the messages attempted (Campaign.sent + Campaign.failed: every message
that left or was refused for good):
  bounce rate     distinct sends with a hard or soft "bounced" event (policy blocks and our
                  own authentication failures are handled elsewhere: outcomes pauses for the
                  latter at once) / attempted;
  complaint rate  distinct sends with a "complained" event / attempted.
Both counts read the (team, type, at) index from the campaign's publication, so a
check costs two small range scans however large the campaign is.

Thresholds: LOFT_AUTOPAUSE_BOUNCE_RATE (0.05), LOFT_AUTOPAUSE_COMPLAINT_RATE
(0.003, Gmail's and Yahoo's line), LOFT_AUTOPAUSE_MIN_SENT (100: a small sample
never triggers); 0 turns a rate check off. When someone resumes an auto-paused
campaign, the first check after the resume records the counts in the notice and
later decisions only count what happened since, so a resume is not undone a
second later by the same bounces.
"""
import logging
import time

from flask import current_app
from peewee import fn

from app.campaigns import states
from app.db import db
from app.notices import alerts
from app.models import Campaign
from app.models import CampaignState
from app.models import Event
from app.models import Notice
from app.models import Send

log = logging.getLogger(__name__)

KIND = "autopause"
FINISHED_KIND = "rates"  # the one warning about a campaign that completed above a threshold
_last_check = {}  # campaign id -> time.monotonic() of its last check in this process


def thresholds():
    config = current_app.config
    return (float(config.get("AUTOPAUSE_BOUNCE_RATE", 0.05)), float(config.get("AUTOPAUSE_COMPLAINT_RATE", 0.003)),
            max(1, int(config.get("AUTOPAUSE_MIN_SENT", 100))))


def counts(campaign):
    """{"attempted", "bounced", "complained"} of a campaign so far."""
    # Publishing froze the audience before the first message: no event of the campaign is older (and
    # unlike started_at it never moves).
    since = campaign.frozen_at or campaign.created_at
    send = Event.data["send"].as_text()
    base = ((Event.team == campaign.team_id) & (Event.at >= since) & (Event.campaign_id == campaign.id))
    bounced = (Event.select(fn.COUNT(fn.DISTINCT(send)))
               .where(base & (Event.type == "bounced") & (Event.data["kind"].as_text().in_(("hard", "soft"))))
               .scalar()) or 0
    complained = (Event.select(fn.COUNT(fn.DISTINCT(send))).where(base & (Event.type == "complained")).scalar()) or 0
    return {"attempted": (campaign.sent or 0) + (campaign.failed or 0), "bounced": bounced, "complained": complained}


def baseline(campaign_id, seen):
    """The counts to measure from: zeros when the campaign never paused itself; else the counts at the
    first check after it was resumed (stored in the last auto-pause notice, so bounces of messages sent
    before the pause that arrive while it is paused are not held against the resumed campaign)."""
    notice = (Notice.select(Notice.id, Notice.data).where((Notice.campaign_id == campaign_id) & (Notice.kind == KIND))
              .order_by(Notice.id.desc()).first())
    if notice is None:
        return {"attempted": 0, "bounced": 0, "complained": 0}
    data = notice.data if isinstance(notice.data, dict) else {}
    if not isinstance(data.get("baseline"), dict):
        data["baseline"] = dict(seen)
        Notice.update(data=data).where(Notice.id == notice.id).execute()
    return {key: int(data["baseline"].get(key, 0)) for key in ("attempted", "bounced", "complained")}


def _percent(rate):
    return f"{rate * 100:.1f}%" if rate >= 0.01 else f"{rate * 100:.2f}%"


def decide(now_counts, base, bounce_limit, complaint_limit, min_sent, finished=False):
    """(kind, reason) when the campaign must pause (or, `finished`, when it should have), else None."""
    attempted = now_counts["attempted"] - base["attempted"]
    if attempted < min_sent:
        return None
    complained = now_counts["complained"] - base["complained"]
    bounced = now_counts["bounced"] - base["bounced"]
    opening = "This campaign completed, but" if finished else "Paused by Loft:"
    if complaint_limit > 0 and complained / attempted >= complaint_limit:
        rate = complained / attempted
        then = "before sending to this audience again." if finished else "then resume it."
        return "complaints", (
            f"{opening} {complained} of {attempted} recipients marked this campaign as spam "
            f"({_percent(rate)}, the limit is {_percent(complaint_limit)}). Mailbox providers start filtering "
            f"a sender above 0.3%. Check that everyone on the audience asked for this mail, {then}")
    if bounce_limit > 0 and bounced / attempted >= bounce_limit:
        rate = bounced / attempted
        then = "before mailing it again." if finished else "then resume the campaign."
        return "bounces", (
            f"{opening} {bounced} of {attempted} messages bounced ({_percent(rate)}, the limit is "
            f"{_percent(bounce_limit)}). The bounced addresses are suppressed already; a high rate usually means "
            f"an old or bought list. Check where this audience came from {then}")
    return None


def check_campaign(campaign, now=None):
    """Pause a sending campaign whose bounce or complaint rate crossed its threshold.

    Returns the reason when this call paused it, else None. The pause is a
    conditional state change, so of several checks at once only one pauses and
    alerts; the notice is written in the same transaction as the pause.
    """
    campaign_id = campaign.id if isinstance(campaign, Campaign) else int(campaign)
    fresh = Campaign.get_or_none(Campaign.id == campaign_id)
    if fresh is not None and fresh.state == CampaignState.COMPLETED:
        return _warn_finished(fresh, now)
    if fresh is None or fresh.state != CampaignState.SENDING:
        return None
    bounce_limit, complaint_limit, min_sent = thresholds()
    seen = counts(fresh)
    decision = decide(seen, baseline(campaign_id, seen), bounce_limit, complaint_limit, min_sent)
    if decision is None:
        return None
    kind, reason = decision
    with db.atomic():
        try:
            states.transition(fresh, CampaignState.PAUSED, reason=reason)
        except states.TransitionError:
            return None  # paused, cancelled or completed meanwhile
        subject = (f"Campaign “{fresh.name}” paused: too many "
                   f"{'complaints' if kind == 'complaints' else 'bounces'}")
        alerts.notify(fresh.team_id, subject, reason, kind=KIND, campaign_id=campaign_id,
                      data=dict(seen, reason=kind), now=now)
    log.warning("campaign %s auto-paused: %s", campaign_id, reason)
    return reason


def _warn_finished(campaign, now=None):
    """One notice (never a pause) when a completed campaign's rates crossed a threshold; its text, or None."""
    if Notice.select().where((Notice.campaign_id == campaign.id) & (Notice.kind == FINISHED_KIND)).exists():
        return None
    bounce_limit, complaint_limit, min_sent = thresholds()
    seen = counts(campaign)
    decision = decide(seen, baseline(campaign.id, seen), bounce_limit, complaint_limit, min_sent, finished=True)
    if decision is None:
        return None
    kind, text = decision
    subject = f"Campaign “{campaign.name}” finished with too many {'complaints' if kind == 'complaints' else 'bounces'}"
    alerts.notify(campaign.team_id, subject, text, kind=FINISHED_KIND, campaign_id=campaign.id,
                  data=dict(seen, reason=kind), now=now)
    return text


def after_completion(campaign_id):
    """The engine's hook once a campaign completed: the last results may have crossed a line that the
    throttled checks during sending did not see. Never raises."""
    try:
        return check_campaign(campaign_id)
    except Exception:  # noqa: BLE001
        log.exception("campaign %s: the check after completion failed", campaign_id)
        return None


def check_soon(campaign_id):
    """check_campaign, unless this campaign was checked less than AUTOPAUSE_CHECK_SECONDS ago here."""
    interval = float(current_app.config.get("AUTOPAUSE_CHECK_SECONDS", 5))
    moment = time.monotonic()
    last = _last_check.get(campaign_id)
    if interval > 0 and last is not None and moment - last < interval:
        return None
    _last_check[campaign_id] = moment
    return check_campaign(campaign_id)


def after_flush(campaign_id):
    """The sending engine's hook, on its database thread after each batch of results is written.
    Never raises: a failed check must not make the engine write its results again."""
    try:
        return check_soon(campaign_id)
    except Exception:  # noqa: BLE001
        log.exception("campaign %s: the auto-pause check failed", campaign_id)
        return None


def after_outcomes(results):
    """outcomes.apply's hook: check the campaigns that just got a new bounce or complaint. Never raises."""
    try:
        send_ids = [r["send_id"] for r in results
                    if not r.get("duplicate") and r.get("kind") in ("hard", "soft", "complaint")]
        if not send_ids:
            return None
        campaign_ids = {row[0] for row in Send.select(Send.campaign).where(Send.id.in_(send_ids)).tuples()}
        return [check_soon(campaign_id) for campaign_id in sorted(campaign_ids)]
    except Exception:  # noqa: BLE001
        log.exception("the auto-pause check after outcomes failed")
        return None
