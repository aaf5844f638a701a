"""Tasks of the sending engine: thin wrappers over app/sending services.

send_campaign(id) runs the engine for one campaign. Up to SEND_RUNS_PER_CAMPAIGN
runs send a campaign at once (app/sending/lease.py, in the database), each
claiming its own sends; a run that starts with room for another enqueues one more
task, so the other consumer processes join in. A run left by a killed worker runs
out by itself within seconds (no huey lock to flush), and its claims go back to
the queue. A run ends when the campaign is done, paused or cancelled, or after
SEND_RUN_SECONDS; the task then enqueues the continuation.

tick() runs every minute: it removes what dead runs left (their SendRun rows and
permits), starts scheduled campaigns whose time has come,
decides due A/B tests, and re-enqueues every campaign still "sending" (after
a crash, or when retries became due); a campaign already sent by as many runs
as it may have simply answers "busy".

The engine knows nothing of bounces: run_campaign() here composes it with
bounce handling (app/bounces) through its hooks.
"""
import logging
import os
import socket
import time

from flask import current_app
from huey import crontab

from app.notices import alerts
from app.bounces import autopause
from app.bounces import outcomes
from app.campaigns import ab_testing
from app.campaigns import finished
from app.campaigns import publishing
from app.campaigns import schedule
from app.campaigns import states
from app.campaigns.errors import CampaignError
from app.deliverability import gate as domain_gate
from app.models import Campaign
from app.models import CampaignState
from app.models import utcnow
from app.operations import heartbeat
from app.sending import engine
from app.sending import shares
from app.sending.tuning import Settings
from tasks import huey
from tasks import retry_policy

log = logging.getLogger(__name__)

SHORT_WAIT = 60  # seconds; longer waits are left to the minute tick

# Each refusal is classified in the flush that records it (only a dead address bounces and suppresses
# the contact; a policy block never blames it; our own failed authentication pauses the campaign and
# alerts the admins); rates are checked after each flush and once more when the campaign completes.
def another_run(campaign_id):
    """Let one more consumer join the campaign. Immediate mode (tests, no consumer) runs a task
    inline, where a second run would only nest inside the first: it is left out there."""
    if not huey.immediate:
        send_campaign(campaign_id, join=True)


def after_completion(campaign_id):
    """The rates' last check (it may warn: that warning is then the finished notice), then the team hears the
    campaign finished (app/campaigns/finished.py)."""
    autopause.after_completion(campaign_id)
    finished.announce(campaign_id)


BOUNCE_HANDLING = engine.Hooks(on_refusals=outcomes.apply_smtp_replies, after_flush=autopause.after_flush,
                               on_completed=after_completion, more_runs=another_run,
                               alert=alerts.notify)


def run_campaign(campaign_id, deadline_seconds=None):
    """One engine run for the campaign, with bounce handling."""
    return engine.run_campaign(campaign_id, deadline_seconds=deadline_seconds, hooks=BOUNCE_HANDLING)


# A task sent to let another run join (another_run) that finds its worker process already sending the campaign goes
# straight back to the queue for another process to take, for up to HANDOFF_SECONDS. Scheduled comebacks (a second
# apart, up to ten, the thread that found one pausing meanwhile) were left to chance: a huey thread that has just
# run a task polls the queue every 0.1 s, an idle one every --max-delay (1 s), so the process already sending took
# every comeback in about one welcome bench run of ten, and whichever process polled faster took them all when the
# other's idle threads polled less often (its second consumer ran no task in the whole run, 2026-12-05); the campaign
# then sent with one run instead of two, a third slower, until the minute tick. Put back at once, the task is in the
# queue nearly all the time, and the other process's next poll finds it (hand-off bench: joined in 12 of 12, a median
# 0.3 s after the first run). The threads of the process already sending pass it on meanwhile (a read of the campaign
# and two queue writes each); it is not passed on when no consumer of another process is alive
# (app/operations/heartbeat.py), nor in tests' immediate mode (no other process).
HANDOFF_SECONDS = 10.0


@retry_policy(0, 0, "the minute tick starts a run for a campaign still sending; a retry would race it")
@huey.task(name="sending.send_campaign")
def send_campaign(campaign_id, after_busy=0, join=False, handing_since=None):
    """One engine run, then whatever continues the campaign. `after_busy`: how many times this task has come back
    after "busy" (True, from a task queued by an older Loft, counts as once). `join`: sent by a run with room for
    another beside it, so only another process will do; any other task (e.g. an automation tick's, making sure its
    step's campaign is sending) is served by the run already here. `handing_since`: when a join task was first
    passed on (hand_on)."""
    result = run_campaign(campaign_id)
    if not result.again:
        return
    if result.resume_at is not None:
        # A warm-up plan holds it: one task at the moment its allowance is back (huey's eta, UTC)
        # continues it by itself; the minute tick leaves it alone until then.
        if result.new_wait:
            send_campaign.schedule((campaign_id,), eta=result.resume_at)
        return
    if result.outcome == "busy":
        # A join that found this process sending it: back to the queue for another process (hand_on). Otherwise come
        # back once (when every run the campaign may have is live: when the holder's lease would run out, as it may
        # have died); never twice in a row, so a long live run does not collect waiting tasks.
        if join and result.here:
            hand_on(campaign_id, handing_since)
        elif not after_busy:
            send_campaign.schedule((campaign_id, 1, False), delay=result.delay)
        return
    if result.delay <= 0:
        send_campaign(campaign_id)
    elif result.delay < SHORT_WAIT:
        send_campaign.schedule((campaign_id,), delay=result.delay)


def hand_on(campaign_id, since=None, now=None):
    """Put a join task this process cannot serve straight back on the queue (no delay: a scheduled task waits in one
    process's schedule) while HANDOFF_SECONDS have not passed since it was first passed on and a consumer of another
    process is alive. True if it was."""
    now = time.time() if now is None else now
    since = now if since is None else since
    if huey.immediate or now - since >= HANDOFF_SECONDS or not heartbeat.other_consumer_alive(
            huey.name, socket.gethostname(), os.getpid(), current_app.config["WORKER_HEARTBEAT_SECONDS"] * 3):
        return False
    send_campaign(campaign_id, 0, True, since)
    return True


@retry_policy(0, 0, "periodic: the next minute runs again")
@huey.periodic_task(crontab(minute="*"), name="sending.tick")
def tick():
    shares.prune(Settings.from_config(current_app.config).lease_seconds)
    for campaign in schedule.due_scheduled():
        try:
            publishing.start(campaign)
        except domain_gate.DomainGateError as exc:
            # Stays scheduled: it starts on the first minute its domain passes (the alert says why).
            log.warning("scheduled campaign %s waits for its sender domain: %s", campaign.id, exc)
            continue
        except (CampaignError, states.TransitionError) as exc:
            log.warning("scheduled campaign %s could not start: %s", campaign.id, exc)
            try:
                states.transition(Campaign.get_by_id(campaign.id), CampaignState.DRAFT,
                                  f"The scheduled send could not start: {exc}")
            except states.TransitionError:
                pass
            continue
        send_campaign(campaign.id)
    now = utcnow()
    for campaign in Campaign.select().where(Campaign.state == CampaignState.SENDING):
        if ab_testing.ab_decision_due(campaign):
            ab_testing.decide_ab_winner(campaign)
        if campaign.waiting_until is None or campaign.waiting_until <= now:
            send_campaign(campaign.id)  # else a warm-up plan holds it, and its scheduled run continues it
