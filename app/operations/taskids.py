"""Loft's huey task ids: UUIDv7, so a queued task tells how long it has waited (tasks.TimedTaskWrapper)."""
import datetime
import os
import time
import uuid


def timed_task_id():
    """A UUIDv7 (RFC 9562): the time it was made in its first 48 bits, then random. huey stores no enqueue
    time; an id that carries one lets the queue page say how long a task has waited, and a retry keeps the
    task's id, so its age counts from the first time it was queued."""
    random = int.from_bytes(os.urandom(10), "big")
    value = ((time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | (random >> 62 & 0xFFF) << 64
             | 0b10 << 62 | random & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def enqueued_at(task_id):
    """The UTC time a timed_task_id was made (naive, like every stored time), or None for another id."""
    try:
        value = uuid.UUID(str(task_id))
    except ValueError:
        return None
    if value.version != 7:
        return None  # queued by an older Loft (uuid4) or given by hand
    return datetime.datetime.fromtimestamp((value.int >> 80) / 1000, datetime.timezone.utc).replace(tzinfo=None)
