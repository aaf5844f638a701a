"""The `campaign_finished` notice (app/notices/preferences.py decides who sees it and who gets it by email).

    announce(campaign_id)   once a campaign completed: one notice with what it sent, unless this completion already
                            has one (a finished campaign whose rates crossed a line got app/bounces/autopause.py's
                            warning, a kind the registry files under campaign_finished: that warning is the notice)

Called by the sending task's completion hook (tasks/sending.py), after the rates' last check. Never raises: the
campaign is complete whether or not the team hears of it.
"""
import logging

from app.models import Campaign
from app.models import CampaignState
from app.models import Notice
from app.notices import alerts
from app.notices import preferences

log = logging.getLogger(__name__)
KIND = "campaign_finished"


def announce(campaign_id, now=None):
    """The notice stored, or None (not completed, or this completion was announced already)."""
    try:
        campaign = Campaign.get_or_none(Campaign.id == campaign_id)
        if campaign is None or campaign.state != CampaignState.COMPLETED:
            return None
        # A campaign completes again after its failed messages are sent again: one notice per completion.
        since = campaign.finished_at or campaign.updated_at
        if Notice.select().where((Notice.campaign_id == campaign.id) & Notice.kind.in_(preferences.kinds_of(KIND))
                                 & (Notice.created_at >= since)).exists():
            return None
        failed = f", {campaign.failed:,} could not be delivered" if campaign.failed else ""
        return alerts.notify(campaign.team_id, f"Campaign “{campaign.name}” has finished",
                             f"{campaign.sent:,} message{'s' if campaign.sent != 1 else ''} sent{failed}. "
                             "Its report fills in as opens, clicks and bounces come back.",
                             kind=KIND, campaign_id=campaign.id, now=now,
                             data={"sent": campaign.sent, "failed": campaign.failed})
    except Exception:  # noqa: BLE001 - a notice must never undo or fail a completion
        log.exception("campaign %s: the finished notice failed", campaign_id)
        return None
