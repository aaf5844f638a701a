"""Tasks of the transactional stream, on its own queue (`tx_huey`, consumed by the Procfile's `tx`).

A campaign's send task can hold every worker of the main queue for hours; a receipt queued here is
picked up by the transactional consumer's own workers at once.
"""
from huey import crontab

from app.transactional import service
from tasks import huey
from tasks import retry_policy
from tasks import tx_huey


@retry_policy(0, 0, "deliver() schedules its own retries (LOFT_TX_RETRY_DELAYS), counted on the TxMessage")
@tx_huey.task()
def send_tx(tx_id):
    """Send one accepted message; after a temporary SMTP failure the task comes back after the next delay
    of LOFT_TX_RETRY_DELAYS (its TxMessage counts the attempts), and after the last one it has failed."""
    outcome = service.deliver(tx_id)
    if outcome.retry_in is not None:
        send_tx.schedule((tx_id,), delay=outcome.retry_in)
    return outcome.status


def queue(tx_messages):
    """Queue each message `service.accept` or `service.submit_raw` returned."""
    for tx in tx_messages:
        send_tx(tx.id)


@retry_policy(0, 0, "periodic: the next run is five minutes away")
@huey.periodic_task(crontab(minute="*/5"), name="transactional.requeue_stalled")
def requeue_stalled():
    """On the main queue's periodic worker (the `tx` consumer runs none): queue again the messages left
    queued with nothing heard of them (service.stalled_ids); returns how many."""
    stalled = service.stalled_ids()
    for tx_id in stalled:
        send_tx(tx_id)
    return len(stalled)
