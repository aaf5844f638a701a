"""Operations (docs/operations.md): the consumers' heartbeats, the dead-letter list and recent failures of tasks,
and the worker-down alert's claim.

worker_heartbeat  one consumer process: host, pid, queue, started_at, seen_at (indexed: the banner's one query),
                  stopped_at (a clean exit), running (the tasks it ran at its last beat)
dead_letter       a task that failed with no retries left: queue, task_name, task_id, payload (huey's serialised
                  task, base64), arguments and error (scrubbed), first/last failure, attempts
task_failure      each failed run, retrying or not: the queue page's recent failures (pruned)
worker_alert      one row (id 1), made by the first claim: the outage last alerted about (claimed by a conditional
                  UPDATE). Not seeded here, so a freshly migrated database stays empty for flask db copy-to.
"""
import datetime

from peewee import CharField
from peewee import DateTimeField
from peewee import IntegerField
from peewee import Model
from peewee import TextField

from app.db import IdField
from app.db import JSONField


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class WorkerHeartbeat(Base):
        id = IdField()
        host = CharField()
        pid = IntegerField()
        queue = CharField()
        started_at = DateTimeField(default=datetime.datetime.utcnow)
        seen_at = DateTimeField(default=datetime.datetime.utcnow, index=True)
        stopped_at = DateTimeField(null=True)
        running = JSONField(empty=list)

    class DeadLetter(Base):
        id = IdField()
        queue = CharField()
        task_name = CharField()
        task_id = CharField()
        payload = TextField()
        arguments = TextField(default="")
        error_type = CharField()
        error = TextField(default="")
        first_failed_at = DateTimeField(default=datetime.datetime.utcnow)
        last_failed_at = DateTimeField(default=datetime.datetime.utcnow, index=True)
        attempts = IntegerField(default=1)

    class TaskFailure(Base):
        id = IdField()
        queue = CharField()
        task_name = CharField()
        task_id = CharField(index=True)
        error_type = CharField()
        error = TextField(default="")
        retries_left = IntegerField(default=0)
        failed_at = DateTimeField(default=datetime.datetime.utcnow, index=True)

    class WorkerAlert(Base):
        id = IdField()
        outage = CharField(default="")
        alerted_at = DateTimeField(null=True)

    db.create_tables([WorkerHeartbeat, DeadLetter, TaskFailure, WorkerAlert])


def down(migrator, db):
    for table in ("worker_alert", "task_failure", "dead_letter", "worker_heartbeat"):
        db.execute_sql(f'DROP TABLE IF EXISTS "{table}"')
