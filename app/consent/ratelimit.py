"""A small, persistent rate limiter for public endpoints.

Each counted request is a row (bucket, key, at) in rate_limit_hit, so the
limit holds across gunicorn workers and restarts, where a counter in process
memory would not. Keys are HMACs with the instance secret: an IP address is
personal data and need not be stored in clear for a throttle to work.

Counting and recording happen in one IMMEDIATE transaction (the database's
lock_type), so two workers cannot both take the last slot.
"""
import datetime
import hashlib
import hmac
import random

from flask import current_app

from app.db import db
from app.models import RateLimitHit
from app.models import utcnow

# Rows older than this are useless to every window we use; they are pruned
# now and then as new rows arrive, so the table stays small without a cron.
KEEP = datetime.timedelta(days=2)
PRUNE_CHANCE = 0.01


def key_for(value):
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, b"rate-limit:" + str(value).encode(), hashlib.sha256).hexdigest()[:32]


def recent(bucket, value, window_seconds):
    """How many hits `value` has in `bucket` within the last window_seconds."""
    since = utcnow() - datetime.timedelta(seconds=window_seconds)
    return (RateLimitHit.select()
            .where((RateLimitHit.bucket == bucket) & (RateLimitHit.key == key_for(value))
                   & (RateLimitHit.at > since))
            .count())


def hit(bucket, value, limit, window_seconds, cost=1):
    """Record `cost` hits (one by default) and say whether they fit within the limit.

    Returns False, recording nothing, when `value` already has `limit` hits in
    the window, or too many for `cost` more: a refused request does not push
    the window further out. (A test send to 5 addresses costs 5.)
    """
    key = key_for(value)
    now = utcnow()
    since = now - datetime.timedelta(seconds=window_seconds)
    with db.atomic():
        used = (RateLimitHit.select()
                .where((RateLimitHit.bucket == bucket) & (RateLimitHit.key == key) & (RateLimitHit.at > since))
                .count())
        if used + cost > limit:
            return False
        RateLimitHit.insert_many([{"bucket": bucket, "key": key, "at": now}] * cost).execute()
        if random.random() < PRUNE_CHANCE:
            prune(now)
    return True


def prune(now=None):
    """Delete hits too old for any window; returns how many went."""
    return RateLimitHit.delete().where(RateLimitHit.at < (now or utcnow()) - KEEP).execute()
