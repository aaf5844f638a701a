"""The huey instances and what ends each task (its connection released), and nothing else from app/
but the config, app.db, the task metrics and the task ids (app/operations/taskids.py).

Task modules (tasks/<area>.py) import `huey` from here; wsgi.py imports them
all so that `huey_consumer wsgi.huey` registers every task. `tx_huey` is the
transactional stream's own queue ("loft-tx"), with its own consumer
(`huey_consumer wsgi.tx_huey`, the Procfile's `tx`), so a receipt never waits for a
worker that a campaign's long send holds.
"""
import logging
import os
from typing import NamedTuple

from huey import RedisHuey
from huey import SqliteHuey
from huey.api import TaskWrapper

from app.config import Config
from app.operations.taskids import timed_task_id
from app.db import release_db
from app.metrics import tasks as task_metrics

log = logging.getLogger(__name__)

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class TimedTaskWrapper(TaskWrapper):
    """huey's task wrapper whose tasks get a timed_task_id."""

    def create_task(self, func, context=False, name=None, **settings):
        task_class = super().create_task(func, context, name, **settings)
        task_class.create_id = lambda task: timed_task_id()
        return task_class


def queue_for(url, sqlite_path, name="loft"):
    """The huey queue a LOFT_QUEUE_URL names: RedisHuey for a Redis URL (it connects on first use, not
    here), else huey's SQLite file at `sqlite_path`. Anything else is refused before a task is queued."""
    if url.startswith(REDIS_SCHEMES):
        queue = RedisHuey(name, url=url)
    elif url:
        raise ValueError(f"LOFT_QUEUE_URL must be empty (the SQLite queue) or a Redis URL such as "
                         f"redis://127.0.0.1:6379/0, not {url.split('@')[-1]!r}")
    else:
        os.makedirs(os.path.dirname(sqlite_path), exist_ok=True)
        queue = SqliteHuey(name, filename=sqlite_path)
    queue.task_wrapper_class = TimedTaskWrapper
    return queue


huey = queue_for(Config.QUEUE_URL, Config.HUEY_PATH)
tx_huey = queue_for(Config.QUEUE_URL, Config.TX_HUEY_PATH, name="loft-tx")
# Tasks running, completed, failed and retried, by queue and task (app/metrics/tasks.py: huey's signals).
task_metrics.watch(huey)
task_metrics.watch(tx_huey)


@huey.post_execute()
@tx_huey.post_execute()
def release_connection(task, task_value, exc):
    # A consumer thread's app context lasts as long as the worker (wsgi.enter_app_context), so nothing else
    # would ever close its connection: a task leaves it as a web request does (app.db.release_db). A clean
    # one is kept for the next task; one the server dropped (PostgreSQL restarted), one left inside a
    # transaction, or the connection of a task that failed is closed, and the next task opens a new one
    # instead of failing the same way.
    if huey.immediate:  # tests: a task runs inside its caller's context, connection and transaction
        return
    try:
        release_db(exc)
    except Exception:  # a task that ended inside db.atomic() (a bug): its connection is not kept either
        log.exception("task %s ended with its database connection in use", getattr(task, "name", task))


def queued_as(module):
    """Keep the queue name of a task that moved to another module.

    huey stores a queued task as "<module>.<name>" and finds it again by that string, so a task
    moved out of `module` would orphan the messages already in the queue (an invitation's
    retry, a periodic run due when the new code starts). Put it under @huey.task:

        @huey.task(name="mail.send_system_email")
        @queued_as("tasks.mail")
        def send_system_email(...): ...
    """
    def keep(func):
        func.__module__ = module
        return func
    return keep


class RetryPolicy(NamedTuple):
    retries: int  # how many times huey runs the task again after an exception
    delay: int  # seconds before each of those runs
    why: str  # one line: why this many (0 where a retry would be wrong)


def retry_policy(retries, delay, why):
    """Every task's retry policy, stated where the task is and checked (tests/test_operations_retry.py walks
    both queues' registries and fails for a task without one). Put it above @huey.task/@huey.periodic_task:

        @retry_policy(3, 30, "the outbound server may be down for a minute")
        @huey.task(name="mail.send_system_email")

    It sets huey's default_retries/default_retry_delay, so the numbers live here and nowhere else: a task
    that also passes retries= to huey.task is refused. A task that exhausts its retries lands in the
    dead-letter list (app/operations/deadletters.py)."""
    if not why or not why.strip():
        raise ValueError("a retry policy says why")
    if retries < 0 or delay < 0:
        raise ValueError("retries and delay are counts, not negative")

    def declare(wrapper):
        task_class = wrapper.task_class
        if task_class.default_retries or task_class.default_retry_delay:
            raise ValueError(f"{task_class.__name__}: give retries in @retry_policy only, not in @huey.task")
        task_class.default_retries, task_class.default_retry_delay = retries, delay
        task_class.retry_policy = RetryPolicy(retries, delay, why.strip())
        return wrapper
    return declare
