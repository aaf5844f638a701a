"""Tasks of the sending engine: thin wrappers over app/sending services (issue 4).

send_campaign(id) runs the engine for one campaign under a per-campaign lock,
so two workers never send the same campaign at once (the lock is what makes
ledger.recover_in_flight safe). The consumer's --flush-locks clears a lock
left by a killed worker. A run ends when the campaign is done, paused or
cancelled, or after SEND_RUN_SECONDS; it then enqueues its own continuation.

tick() runs every minute: it starts scheduled campaigns whose time has come,
decides due A/B tests, and re-enqueues every campaign still "sending" (after
a crash, or when retries became due); a campaign already being sent simply
finds its lock taken.
"""
import logging

from huey import crontab
from huey.exceptions import TaskLockedException

from app.campaigns import services as campaign_services
from app.campaigns import states
from app.models import Campaign
from app.sending import engine
from tasks import huey

log = logging.getLogger(__name__)

SHORT_WAIT = 60  # seconds; longer waits are left to the minute tick


def lock_name(campaign_id):
    return f"send-campaign-{campaign_id}"


@huey.task(name="sending.send_campaign")
def send_campaign(campaign_id):
    try:
        with huey.lock_task(lock_name(campaign_id)):
            result = engine.run_campaign(campaign_id)
    except TaskLockedException:
        return  # another worker is sending this campaign right now
    if not result.again:
        return
    if result.delay <= 0:
        send_campaign(campaign_id)
    elif result.delay < SHORT_WAIT:
        send_campaign.schedule((campaign_id,), delay=result.delay)


@huey.periodic_task(crontab(minute="*"), name="sending.tick")
def tick():
    for campaign in campaign_services.due_scheduled():
        try:
            campaign_services.start(campaign)
        except (campaign_services.CampaignError, states.TransitionError) as exc:
            log.warning("scheduled campaign %s could not start: %s", campaign.id, exc)
            try:
                states.transition(Campaign.get_by_id(campaign.id), "draft",
                                  f"The scheduled send could not start: {exc}")
            except states.TransitionError:
                pass
            continue
        send_campaign(campaign.id)
    for campaign in Campaign.select().where(Campaign.state == "sending"):
        if campaign_services.ab_decision_due(campaign):
            campaign_services.decide_ab_winner(campaign)
        send_campaign(campaign.id)
