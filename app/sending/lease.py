"""The run lease of a campaign: one run at a time sends it, on any number of workers.

A run holds Campaign.run_token and renews heartbeat_at every second; a run that stops renewing
(kill -9, power loss) loses the lease after SEND_LEASE_SECONDS and the next run takes it over.
"""
import datetime

from app.models import Campaign
from app.models import utcnow


def acquire_lease(campaign_id, token, lease_seconds, now=None):
    """Take the campaign for this run; False while another live run holds it.

    A conditional UPDATE, so of two workers starting together exactly one wins.
    A holder whose heartbeat is older than the lease died (kill -9, power loss):
    its lease is taken over, which is what makes recover_in_flight() safe.
    """
    now = now or utcnow()
    stale = now - datetime.timedelta(seconds=lease_seconds)
    return bool(Campaign.update(run_token=token, heartbeat_at=now)
                .where((Campaign.id == campaign_id)
                       & ((Campaign.run_token == "") | Campaign.heartbeat_at.is_null() | (Campaign.heartbeat_at < stale)))
                .execute())


def renew_lease(campaign_id, token):
    return bool(Campaign.update(heartbeat_at=utcnow())
                .where((Campaign.id == campaign_id) & (Campaign.run_token == token)).execute())


def release_lease(campaign_id, token):
    Campaign.update(run_token="", heartbeat_at=None).where(
        (Campaign.id == campaign_id) & (Campaign.run_token == token)).execute()


def lease_free_in(campaign_id, lease_seconds, now=None):
    """Seconds until the current holder's lease runs out (0 when it already has)."""
    beat = Campaign.select(Campaign.heartbeat_at).where(Campaign.id == campaign_id).scalar()
    if beat is None:
        return 0.0
    return max(0.0, (beat + datetime.timedelta(seconds=lease_seconds) - (now or utcnow())).total_seconds())
