"""Tasks of the bounces area: thin wrappers over app/bounces services.

check_bounce_mailboxes runs every LOFT_BOUNCE_CHECK_MINUTES minutes and enqueues one
check_bounce_mailbox task per enabled mailbox, so a slow or dead server delays only its
own mailbox. A per-mailbox lock keeps two checks of one mailbox (the schedule and a
"Check now") from reading it at the same time; the later one simply skips.
"""
from huey import crontab
from huey.exceptions import TaskLockedException

from app.config import Config
from app.bounces import imap
from tasks import huey
from tasks import queued_as
from tasks import retry_policy

EVERY = max(1, min(59, Config.BOUNCE_CHECK_MINUTES))


@retry_policy(0, 0, "the mailbox row keeps the error and the next periodic check reads the mailbox again")
@huey.task(name="feedback.check_bounce_mailbox")
@queued_as("tasks.feedback")  # the module's first name: messages already queued under it still run
def check_bounce_mailbox(mailbox_id, manual=False):
    try:
        with huey.lock_task(f"bounce-mailbox-{mailbox_id}"):
            imap.check_mailbox(mailbox_id, manual=manual)
    except TaskLockedException:
        pass  # a check of this mailbox is running right now


@retry_policy(0, 0, "periodic: the next run comes within minutes")
@huey.periodic_task(crontab(minute=f"*/{EVERY}"), name="feedback.check_bounce_mailboxes")
@queued_as("tasks.feedback")
def check_bounce_mailboxes():
    for mailbox_id in imap.enabled_ids():
        check_bounce_mailbox(mailbox_id)
