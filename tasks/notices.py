"""Tasks of the notices area: their email to the team's Administrators.

A notice is stored by whoever raises it (app/notices/alerts.py: notify), and its email
leaves from here, outside that caller's transaction and never holding up sending.
"""
from huey import crontab

from app.notices import alerts
from tasks import huey
from tasks import queued_as
from tasks import retry_policy


@retry_policy(0, 0, "periodic: the next minute emails what this one did not")
@huey.periodic_task(crontab(minute="*"), name="notices.email")
@huey.lock_task("notices-email")
@queued_as("tasks.webhooks")
def email_notices():
    """Every minute: email the Administrators about notices not emailed yet."""
    alerts.email_pending()
