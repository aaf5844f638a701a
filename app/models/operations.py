"""Operations: the consumers' heartbeats, tasks that failed, and the one worker-down alert per outage."""
from peewee import CharField
from peewee import DateTimeField
from peewee import IntegerField
from peewee import TextField

from app.db import BaseModel
from app.db import JSONField
from app.models.common import utcnow


class WorkerHeartbeat(BaseModel):
    """One consumer process (huey_consumer) while it runs: written by its heartbeat thread every
    LOFT_WORKER_HEARTBEAT_SECONDS; `stopped_at` is set when it exits cleanly. A process killed outright leaves
    its row with an old `seen_at`, which is how the web side knows the worker is gone."""
    host = CharField()
    pid = IntegerField()
    queue = CharField()  # "loft" or "loft-tx" (huey's name)
    started_at = DateTimeField(default=utcnow)
    seen_at = DateTimeField(default=utcnow, index=True)
    stopped_at = DateTimeField(null=True)
    running = JSONField(empty=list)  # [{"name", "id", "started_at"}] of the tasks running at the last beat


class DeadLetter(BaseModel):
    """A task that failed with no retries left, kept so an administrator can run it again or discard it.
    `payload` is the task as huey serialised it (base64), with its arguments; `error` never holds secrets
    (app/operations/scrub.py)."""
    queue = CharField()
    task_name = CharField()  # huey's "<module>.<name>"
    task_id = CharField()
    payload = TextField()
    arguments = TextField(default="")  # the arguments in words, scrubbed, for the list
    error_type = CharField()
    error = TextField(default="")
    first_failed_at = DateTimeField(default=utcnow)
    last_failed_at = DateTimeField(default=utcnow, index=True)
    attempts = IntegerField(default=1)


class TaskFailure(BaseModel):
    """One failed run of a task (retrying or not): the queue page's "recent failures", pruned to the newest
    few hundred."""
    queue = CharField()
    task_name = CharField()
    task_id = CharField(index=True)
    error_type = CharField()
    error = TextField(default="")
    retries_left = IntegerField(default=0)  # huey will run it again this many more times at most (0: final)
    failed_at = DateTimeField(default=utcnow, index=True)


class WorkerAlert(BaseModel):
    """One row (id 1): the outage the administrators were last told about. A web process claims an outage
    with a conditional UPDATE of `outage`, so two processes never both send the alert."""
    outage = CharField(default="")
    alerted_at = DateTimeField(null=True)
