"""What a queue holds, for the queue page: pending and scheduled tasks by type, read from huey's storage.

huey stores no enqueue time; Loft's task ids carry one (tasks.timed_task_id), so the oldest pending task of
a type has an age. At most SAMPLE messages of each list are read (the counts are huey's own, exact)."""
import dataclasses
import datetime

from app.operations.taskids import enqueued_at

SAMPLE = 5000


@dataclasses.dataclass
class TaskGroup:
    name: str
    count: int = 0
    oldest: datetime.datetime | None = None  # pending: the first enqueue of the oldest one
    next_run: datetime.datetime | None = None  # scheduled: the earliest eta
    retrying: int = 0  # scheduled after a failure (retries below the task's policy)


@dataclasses.dataclass
class QueueSnapshot:
    name: str
    pending_count: int
    scheduled_count: int
    pending: list
    scheduled: list
    sampled: bool  # more messages than SAMPLE: the groups count the first SAMPLE
    error: str = ""


def snapshot(queue, sample=SAMPLE):
    """`sample`: how many messages of each list to read (/metrics reads fewer: its scrape has 50 ms)."""
    try:
        pending_count, scheduled_count = queue.pending_count(), queue.scheduled_count()
        pending = _groups(queue, queue.storage.enqueued_items(sample))
        scheduled = _groups(queue, queue.storage.scheduled_items(sample))
    except Exception as exc:  # the queue's storage cannot be read (Redis down): say so on the page
        return QueueSnapshot(queue.name, 0, 0, [], [], False, error=f"{type(exc).__name__}: cannot read the queue")
    return QueueSnapshot(queue.name, pending_count, scheduled_count, pending, scheduled,
                         sampled=max(pending_count, scheduled_count) > sample)


def _groups(queue, messages):
    groups = {}
    for data in messages:
        try:
            task = queue.deserialize_task(data)
            name = type(task).__name__
        except Exception:  # a task this version does not know
            groups.setdefault("(unknown task)", TaskGroup("(unknown task)")).count += 1
            continue
        group = groups.setdefault(name, TaskGroup(name))
        group.count += 1
        since = enqueued_at(task.id)
        if since and (group.oldest is None or since < group.oldest):
            group.oldest = since
        eta = task.eta
        if eta is not None:
            eta = eta.replace(tzinfo=None)
            if group.next_run is None or eta < group.next_run:
                group.next_run = eta
        if task.retries < type(task).default_retries:
            group.retrying += 1
    return sorted(groups.values(), key=lambda g: (-g.count, g.name))
