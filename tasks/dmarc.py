"""Tasks of the DMARC reports: the weekly digest email to each team's Administrators (Mondays 07:00 UTC)."""
from huey import crontab

from app.deliverability.dmarc import weekly
from tasks import huey
from tasks import retry_policy


@retry_policy(0, 0, "a retry after a partial run could send some digests twice")
@huey.periodic_task(crontab(day_of_week="1", hour="7", minute="0"), name="dmarc.weekly_digest")
def weekly_digest():
    weekly.send_weekly()
