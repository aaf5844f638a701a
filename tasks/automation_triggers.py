"""Tasks of the automation triggers (app/automations/triggers.py): the checks a schedule makes, not an event."""
from huey import crontab

from app.automations import triggers
from tasks import huey
from tasks import retry_policy
from tasks.automations import advance_soon


@retry_policy(0, 0, "periodic: the next check compares the segment again and misses nobody")
@huey.periodic_task(crontab(minute="*/5"), name="automation_triggers.check_segments")
@huey.lock_task("automation-triggers-segments")
def check_segments():
    """Segment-entry automations: newcomers to each segment since the last check enter."""
    entered = triggers.check_segments()
    if entered:
        advance_soon()
    return entered


@retry_policy(0, 0, "periodic: the next hour fires what this one missed on the same day (once per occurrence)")
@huey.periodic_task(crontab(minute="1"), name="automation_triggers.check_dates")
@huey.lock_task("automation-triggers-dates")
def check_dates():
    """Date-field automations: contacts whose date (+ offset) is today in the team's zone, once its time passed."""
    entered = triggers.check_dates()
    if entered:
        advance_soon()
    return entered
