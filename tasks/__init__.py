"""The huey instance, and nothing else from app/ but the config.

Task modules (tasks/<area>.py) import `huey` from here; wsgi.py imports them
all so that `huey_consumer wsgi.huey` registers every task.
"""
import os

from huey import RedisHuey
from huey import SqliteHuey

from app.config import Config

if Config.REDIS_URL:
    huey = RedisHuey("loft", url=Config.REDIS_URL)
else:
    os.makedirs(os.path.dirname(Config.HUEY_PATH), exist_ok=True)
    huey = SqliteHuey("loft", filename=Config.HUEY_PATH)


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
