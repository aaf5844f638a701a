"""Tasks of the deliverability area: thin wrappers over app/deliverability services.

check_all_domains() runs hourly: every verified sender domain is checked (a check younger than
DOMAIN_HEALTH_CACHE_MINUTES is reused) and gated. check_sending_domains() runs every 5 minutes for the
domains that have a campaign sending, or campaigns the gate paused, with a fresh check each time: a
record removed mid-send pauses the campaign within minutes, and a fix resumes it as soon. A campaign the
gate resumes is handed to the sending task here (services never enqueue).
"""
import logging

from huey import crontab

from app.deliverability import blocklists
from app.deliverability import gate
from tasks import huey
from tasks import sending
from tasks import retry_policy

log = logging.getLogger(__name__)


def _check(rows, force):
    resumed = []
    for row in rows:
        try:
            _, done = gate.check_and_gate(row, force=force)
        except Exception:  # noqa: BLE001 - one domain's trouble must not skip the others
            log.exception("sender domain %s: the health check failed", row.id)
            continue
        resumed += done["resumed"]
    for campaign_id in resumed:
        sending.send_campaign(campaign_id)
    return resumed


@retry_policy(0, 0, "periodic: the next hour checks again")
@huey.periodic_task(crontab(minute="11"), name="deliverability.check_all_domains")
@huey.lock_task("deliverability-all-domains")
def check_all_domains():
    if gate.enabled():
        return _check(gate.verified_domains(), force=False)
    return []


@retry_policy(0, 0, "periodic: the next run is five minutes away")
@huey.periodic_task(crontab(minute="*/5"), name="deliverability.check_sending_domains")
@huey.lock_task("deliverability-sending-domains")
def check_sending_domains():
    if gate.enabled():
        return _check(gate.watched_domains(), force=True)
    return []


@retry_policy(0, 0, "periodic: a retry would ask the blocklists again within seconds, which they rate-limit")
@huey.periodic_task(crontab(minute="41", hour="*/6"), name="deliverability.check_blocklists")
@huey.lock_task("deliverability-blocklists")
def check_blocklists():
    """Every 6 hours: ask the DNS blocklists about every team's SMTP addresses and sender domains; a listing
    that starts or ends alerts the team's Administrators (app/deliverability/blocklists.py)."""
    return blocklists.check_all()
