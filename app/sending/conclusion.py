"""How an engine run ends, for the task: what it sent, and whether (and when) to run again.

conclude(campaign_id, run, recovered, hooks) reads the campaign and its ledger once the run has
stopped: completed (the last run to finish moves the campaign on), paused with the reason in words,
or a RunResult telling tasks/sending.py to come back (deadline, caps reached, retries waiting, other
runs still holding claims). work_due() lets a run with nothing to send conclude without connecting.
"""
import dataclasses
import datetime
import logging

from app.campaigns import states
from app.models import AutomationStep
from app.models import Campaign
from app.models import CampaignState
from app.models import Send
from app.models import SendStatus
from app.models import utcnow
from app.senders import warmup
from app.sending import ledger
from app.sending import shares

log = logging.getLogger(__name__)

SOONEST_RESUME = 30  # seconds: the shortest wait of a campaign a warm-up plan holds


@dataclasses.dataclass
class RunResult:
    """What a run ended with, for the task: `again` = enqueue another run, after `delay` seconds."""
    outcome: str  # completed, paused, stopped, deadline, waiting, held, busy
    sent: int = 0
    delay: float = 0
    again: bool = False
    reason: str = ""
    recovered: int = 0
    # A warm-up plan holds the campaign until then (UTC); `new_wait`: this run set that time, so the
    # task schedules the continuation (the other runs that stop at the same moment do not, again).
    resume_at: datetime.datetime = None
    new_wait: bool = False
    # "busy" only because this worker process already sends the campaign: a consumer of another process may join
    here: bool = False


class Idle:
    """The outcome of a run that had nothing to send."""
    sent = 0
    stop_reason = None
    stop_detail = ""


def work_due(campaign_id, settings):
    """Whether a run would find something to send now (queued, or a retry due within the in-run wait)."""
    campaign = Send.campaign == campaign_id
    if Send.select().where(campaign & (Send.status == SendStatus.QUEUED)).exists():
        return True
    soon = utcnow() + datetime.timedelta(seconds=settings.max_in_run_wait)
    return Send.select().where(campaign & (Send.status == SendStatus.DEFERRED)
                               & (Send.next_attempt_at <= soon)).exists()


def conclude(campaign_id, run, recovered, hooks):
    campaign = Campaign.get_by_id(campaign_id)
    result = dict(sent=run.sent, recovered=recovered)
    if run.stop_detail == "lease lost":
        return RunResult("stopped", reason="another worker took the campaign over", **result)
    if campaign.state != CampaignState.SENDING:
        return RunResult("stopped", reason=f"the campaign is {campaign.state}", **result)
    if run.stop_reason == "refused" and _work_left(campaign_id):
        # Suspended, or the monthly cap reached (app/teams/standing.py); with nothing left the campaign completes.
        reason = "Paused by Loft: " + run.stop_detail
        pause_campaign(campaign, reason, hooks)
        return RunResult("paused", reason=reason, **result)
    if run.stop_reason == "accounts":
        reason = "Paused by Loft: every SMTP account of the team is paused. " + run.stop_detail
        pause_campaign(campaign, reason, hooks)
        return RunResult("paused", reason=reason, **result)
    if run.stop_reason == "deadline":
        return RunResult("deadline", again=True, **result)
    if run.stop_reason == "error":
        return RunResult("waiting", again=True, delay=30, reason=run.stop_detail, **result)
    counts = ledger.status_counts(campaign_id)
    if run.stop_reason == "capped":
        # Every live lane was out of permits when the run stopped (a later re-read may have cleared the mark).
        capped = [lane.account for lane in run.lanes.values() if lane.capped_account and not lane.paused]
        return capped_result(campaign, capped, run, result)
    if counts.get(SendStatus.QUEUED):
        return RunResult("deadline", again=True, **result)  # e.g. an account paused mid-run; others remain
    if counts.get(SendStatus.CLAIMED):
        # Other runs hold the rest: the last of them concludes the campaign. Come back when their
        # claims would run out, in case one of them died with its claims.
        expires = ledger.claims_expire_at(campaign_id)
        delay = max(0.0, (expires - utcnow()).total_seconds()) + 0.5 if expires else 0.5
        return RunResult("waiting", again=True, delay=delay, reason="other runs are sending the rest", **result)
    if counts.get(SendStatus.DEFERRED):
        due = ledger.next_due(campaign_id)
        delay = max(0.0, (due - utcnow()).total_seconds()) if due else 0.0
        return RunResult("waiting", again=True, delay=delay, reason="retries are waiting", **result)
    if counts.get(SendStatus.HELD):
        return RunResult("held", reason="the A/B test is running; the rest waits for the winner", **result)
    if AutomationStep.select().where(AutomationStep.campaign == campaign_id).exists():
        # An automation email step's hidden campaign (app/automations/mail.py): runs keep reaching the step, so it
        # is never complete (no "finished" notice) while the automation lives; the minute tick looks in again.
        return RunResult("idle", reason="an automation's email step: waiting for the next run", **result)
    try:
        states.transition(campaign, CampaignState.COMPLETED)
    except states.TransitionError:
        return RunResult("stopped", reason="the campaign changed meanwhile", **result)
    hooks.on_completed(campaign_id)  # e.g. too many bounces in the last results: the admins hear of it
    return RunResult("completed", **result)


def _work_left(campaign_id):
    counts = ledger.status_counts(campaign_id)
    return any(counts.get(status) for status in (SendStatus.QUEUED, SendStatus.CLAIMED, SendStatus.DEFERRED,
                                                  SendStatus.HELD))


def capped_result(campaign, capped, run, result):
    """Every account was out of allowance. Under a warm-up plan (an account's or the From domain's) the
    campaign waits, still "sending", until the plan's allowance is back (shares.allowance_back_at):
    Campaign.waiting_until says when, and the task schedules the run that continues it then. Held
    only by hourly or daily limits, the minute tick tries again as before."""
    now = utcnow()
    lease_seconds = run.settings.lease_seconds
    domain = run.dkim_domain if getattr(run, "plan_domain_id", None) else None
    reason = shares.capped_in_words(capped, lease_seconds, now, domain=domain)
    planned = [account for account in capped if warmup.limit(account, now.date()) is not None]
    if not planned and domain is None:
        return RunResult("waiting", again=True, delay=300, reason=reason, **result)
    # Never sooner than SOONEST_RESUME: the estimate leaves out permits other live runs hold, so "now" may
    # only mean they have it; a run scheduled at once would find none and schedule itself again.
    resume_at = max(shares.allowance_back_at(capped, domain, now),
                    now + datetime.timedelta(seconds=SOONEST_RESUME)).replace(microsecond=0)
    new_wait = states.wait_until(campaign.id, resume_at)
    return RunResult("waiting", again=True, delay=max(0.0, (resume_at - now).total_seconds()), reason=reason,
                     resume_at=resume_at, new_wait=new_wait, **result)


def pause_campaign(campaign, reason, hooks):
    """Pause the campaign with the reason, log it, and tell the team: the notice the Notices page
    promises, emailed to the Administrators by the notices task (it was only a line on the page)."""
    try:
        states.transition(campaign, CampaignState.PAUSED, reason)
    except states.TransitionError:
        return  # paused or cancelled by someone meanwhile
    log.warning("campaign %s paused by the engine: %s", campaign.id, reason)
    hooks.alert(campaign.team_id, f"“{campaign.name}” paused: it cannot be sent right now", reason,
                kind="engine_pause", campaign_id=campaign.id)
