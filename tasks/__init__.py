"""The huey instances and what ends each task (its connection released), and nothing else from app/
but the config and app.db.

Task modules (tasks/<area>.py) import `huey` from here; wsgi.py imports them
all so that `huey_consumer wsgi.huey` registers every task. `tx_huey` is the
transactional stream's own queue ("loft-tx"), with its own consumer
(`huey_consumer wsgi.tx_huey`, the Procfile's `tx`), so a receipt never waits for a
worker that a campaign's long send holds.
"""
import logging
import os

from huey import RedisHuey
from huey import SqliteHuey

from app.config import Config
from app.db import release_db

log = logging.getLogger(__name__)

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def queue_for(url, sqlite_path, name="loft"):
    """The huey queue a LOFT_QUEUE_URL names: RedisHuey for a Redis URL (it connects on first use, not
    here), else huey's SQLite file at `sqlite_path`. Anything else is refused before a task is queued."""
    if url.startswith(REDIS_SCHEMES):
        return RedisHuey(name, url=url)
    if url:
        raise ValueError(f"LOFT_QUEUE_URL must be empty (the SQLite queue) or a Redis URL such as "
                         f"redis://127.0.0.1:6379/0, not {url.split('@')[-1]!r}")
    os.makedirs(os.path.dirname(sqlite_path), exist_ok=True)
    return SqliteHuey(name, filename=sqlite_path)


huey = queue_for(Config.QUEUE_URL, Config.HUEY_PATH)
tx_huey = queue_for(Config.QUEUE_URL, Config.TX_HUEY_PATH, name="loft-tx")


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
