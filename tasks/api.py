"""Tasks of the API area: thin wrappers over app/api services."""
from huey import crontab

from app.api import idempotency
from tasks import huey
from tasks import retry_policy


@retry_policy(0, 0, "hourly: the next hour prunes what this one left")
@huey.periodic_task(crontab(minute="23"), name="api.prune_idempotency")
def prune_idempotency():
    """Hourly: Idempotency-Key records past their keeping time go, so a key can be used again and the
    table stays small without any request paying for the delete."""
    idempotency.prune()
