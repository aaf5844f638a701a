"""Tasks of the webhooks area: thin wrappers over app/webhooks services."""
from flask import current_app
from huey import crontab

from app.webhooks import delivery
from tasks import huey
from tasks import retry_policy


@retry_policy(0, 0, "periodic: the next minute dispatches from the cursor")
@huey.periodic_task(crontab(minute="*"), name="webhooks.tick")
@huey.lock_task("webhooks-tick")
def webhooks_tick():
    """Every minute: new events become deliveries (a bounded batch), then due deliveries are sent."""
    delivery.dispatch()  # at most 5 x 2,000 events per tick; the cursor keeps the rest for the next one
    delivery.send_due()


@retry_policy(0, 0, "daily: the next night prunes what this one left")
@huey.periodic_task(crontab(hour="3", minute="41"), name="webhooks.prune")
def prune_log():
    """Daily: finished deliveries older than LOFT_WEBHOOK_LOG_DAYS leave the delivery log."""
    delivery.prune_log(current_app.config["WEBHOOK_LOG_DAYS"])


@retry_policy(0, 0, "each delivery row has its own backoff schedule, sent by webhooks.tick")
@huey.task(name="webhooks.deliver")
def deliver(delivery_id):
    delivery.deliver(delivery_id)
