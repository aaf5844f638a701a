"""Tasks that failed: each failed run (the queue page's recent failures) and, when a task has no retries
left, its dead letter, kept with the task itself so an administrator can run it again or discard it.

Written from huey's SIGNAL_ERROR in the consumer (tasks/operations.py); nothing here imports a task. An error
and the arguments are scrubbed (app/operations/scrub.py) before they are stored: they are shown on a page."""
import base64

from app.db import db
from app.errors import Problem
from app.models import DeadLetter
from app.models import TaskFailure
from app.models import utcnow
from app.operations.scrub import scrub

RECENT_KEEP = 200  # failed runs kept for "recent failures"
PAGE = 200  # dead letters shown at once


class RetryError(Problem):
    """A dead letter cannot be queued again (its task's code is gone, its queue unknown)."""


def record_failure(queue, task_name, task_id, exc, retries_left, payload=None, arguments="", attempts=1):
    """One failed run of a task; with `payload` (the final failure: no retries left) also its dead letter."""
    error_type, error = type(exc).__name__[:100], scrub(exc)
    now = utcnow()
    with db.atomic():
        failure = TaskFailure.create(queue=queue, task_name=task_name[:250], task_id=task_id, error_type=error_type,
                                     error=error, retries_left=retries_left, failed_at=now)
        TaskFailure.delete().where(TaskFailure.id <= failure.id - RECENT_KEEP).execute()
        if payload is None:
            return None
        first = (TaskFailure.select(TaskFailure.failed_at).where(TaskFailure.task_id == task_id)
                 .order_by(TaskFailure.id).limit(1).scalar()) or now
        return DeadLetter.create(queue=queue, task_name=task_name[:250], task_id=task_id,
                                 payload=base64.b64encode(payload).decode("ascii"), arguments=scrub(arguments, 500),
                                 error_type=error_type, error=error, first_failed_at=first, last_failed_at=now,
                                 attempts=attempts)


def recent_failures(limit=50):
    return list(TaskFailure.select().order_by(TaskFailure.id.desc()).limit(limit))


def dead_letters(limit=PAGE):
    return list(DeadLetter.select().order_by(DeadLetter.id.desc()).limit(limit))


def count():
    return DeadLetter.select().count()


def _chosen(ids, everything):
    query = DeadLetter.select().order_by(DeadLetter.id)
    return list(query if everything else query.where(DeadLetter.id.in_([int(i) for i in ids] or [0])))


def retry(queues, ids=(), everything=False):
    """Queue the chosen dead letters again with their retries reset, each removed from the list once queued.
    `queues` maps a queue name to its huey. Returns (how many were queued, [problems in words])."""
    queued, problems = 0, []
    for letter in _chosen(ids, everything):
        try:
            task = _task_of(queues, letter)
        except RetryError as exc:
            problems.append(str(exc))
            continue
        task.retries = type(task).default_retries  # its policy again, as when it was first queued
        task.retry_delay = type(task).default_retry_delay
        task.eta = None
        queues[letter.queue].enqueue(task)
        DeadLetter.delete().where(DeadLetter.id == letter.id).execute()
        queued += 1
    return queued, problems


def _task_of(queues, letter):
    queue = queues.get(letter.queue)
    if queue is None:
        raise RetryError(f"{letter.task_name}: the queue {letter.queue!r} is not one of this Loft's; discard it.")
    try:
        return queue.deserialize_task(base64.b64decode(letter.payload))
    except Exception:  # huey's "not found in TaskRegistry", or a payload an older version wrote
        raise RetryError(f"{letter.task_name} no longer exists in this version of Loft, so it cannot run again; "
                         f"discard it.") from None


def discard(ids=(), everything=False):
    """Delete the chosen dead letters; returns how many."""
    query = DeadLetter.delete()
    if not everything:
        query = query.where(DeadLetter.id.in_([int(i) for i in ids] or [0]))
    return query.execute()
