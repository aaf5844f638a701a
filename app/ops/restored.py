"""After a restore: stop every campaign that may have sent mail the restored database does not know of.

The restored Send ledger is the ledger as of the backup. Whatever a campaign sent after that moment
is recorded nowhere any more, so resuming it would mail those people a second time (12,060 of 20,000
when this was tried). Loft cannot know who got what; a person can (the SMTP provider's logs), so
each such campaign stops and its team gets a notice saying exactly that:

- sending   → paused, with the reason;
- scheduled for a time that has come → back to draft (it may have gone out after the backup);
- paused    → stays paused, with the same warning, as it may have been resumed after the backup.

The queue restored with the data may still hold "send this campaign" tasks; they are harmless because
the engine sends only campaigns in the "sending" state (engine.run_campaign), which none of these is.
"""
from app.campaigns import states
from app.feedback import alerts
from app.models import Campaign
from app.models import utcnow

KIND = "restore"


def settle_campaigns(backup_time, now=None):
    """Pause / unschedule the campaigns above and notify their teams. Returns [(campaign, what), ...]."""
    now = now or utcnow()
    when = backup_time.strftime("%Y-%m-%d %H:%M UTC")
    affected = []
    for campaign in Campaign.select().where(Campaign.state.in_(("sending", "paused", "scheduled"))).order_by(Campaign.id):
        if campaign.state == "scheduled" and (campaign.scheduled_at is None or campaign.scheduled_at > now):
            continue  # its time has not come: it cannot have gone out after the backup
        what = _stop(campaign, when)
        alerts.notify(campaign.team_id, f"Restored from a backup: check “{campaign.name}” before it goes on",
                      _notice_text(campaign, what, when), kind=KIND, campaign_id=campaign.id,
                      data={"backup_created_at": when, "state_before": campaign.state})
        affected.append((campaign, what))
    return affected


def _stop(campaign, when):
    reason = (f"Paused by the restore of the backup of {when}: messages sent after the backup are not "
              "recorded, so resuming may send them twice.")
    if campaign.state == "sending":
        states.transition(campaign, "paused", reason)
        return "paused"
    if campaign.state == "scheduled":
        states.transition(campaign, "draft", f"Unscheduled by the restore of the backup of {when}: "
                                             "its time had come, so it may have gone out after the backup.")
        return "unscheduled"
    Campaign.update(state_reason=reason, updated_at=utcnow()).where(Campaign.id == campaign.id).execute()
    return "kept paused"


def _notice_text(campaign, what, when):
    done = {"paused": "It was sending when the backup was made, so Loft paused it.",
            "unscheduled": "It was scheduled for a time that has passed since, so Loft put it back to draft.",
            "kept paused": "It was paused when the backup was made and stays paused."}[what]
    return (f"Loft was restored from the backup made at {when}. {done} "
            f"Messages this campaign sent after {when} are not recorded in the restored database: "
            "if you resume or publish it, those recipients may get it twice. Check what went out (for example "
            "in your SMTP provider's logs), then decide: resume it, or cancel it and send a new campaign to "
            "the people who did not get it.")
