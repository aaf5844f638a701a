"""Tasks of the API area: thin wrappers over app/api services."""
from huey import crontab

from app.api import idempotency
from tasks import huey


@huey.periodic_task(crontab(minute="23"), name="api.prune_idempotency")
def prune_idempotency():
    """Hourly: Idempotency-Key records past their keeping time go, so a key can be used again and the
    table stays small without any request paying for the delete."""
    idempotency.prune()
