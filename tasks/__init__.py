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
