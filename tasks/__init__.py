"""The huey instances, and nothing else from app/ but the config.

Task modules (tasks/<area>.py) import `huey` from here; wsgi.py imports them
all so that `huey_consumer wsgi.huey` registers every task. `tx_huey` is the
transactional stream's own queue ("loft-tx"), with its own consumer
(`huey_consumer wsgi.tx_huey`, the Procfile's `tx`), so a receipt never waits for a
worker that a campaign's long send holds.
"""
import os

from huey import RedisHuey
from huey import SqliteHuey

from app.config import Config

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
