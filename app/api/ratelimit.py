"""The API's request limits: each key's requests per minute, and each client address's unknown or revoked
keys per minute. Both hold across every web process (gunicorn's workers, several boxes).

Per key, a fixed one-minute window:
- With Redis (LOFT_QUEUE_URL=redis://...), one INCR and EXPIRE per request, sent as one pipeline: the count
  every process sees, exact. While Redis does not answer, the database counts as below.
- Else the database's ApiRateWindow row of the key and minute, raised by an upsert that returns the new count.
  A process does not write it for every request: it counts a key's requests in memory and adds them to the row
  in one upsert every FLUSH_EVERY requests or FLUSH_SECONDS, and on every request once its count is within
  FLUSH_EVERY of the limit. Each process admits at most FLUSH_EVERY - 1 requests that the row does not show
  yet, so a key can get past its limit by at most (web processes - 1) x (FLUSH_EVERY - 1) requests in a
  minute (9 with gunicorn's two workers); a process alone is exact. A key's older minutes are deleted when
  its new minute's row is made.

Per client address (failed_sign_in, sign_in_wait): only a presented key that is not known is counted (a
missing header guesses nothing). Redis: a fixed minute, as above. Else rows of rate_limit_hit (the public
pages' limiter, app.consent.ratelimit: the last 60 seconds, the address kept as an HMAC). A key this process
has already found (app.api.keys.known_key) skips the check, so the requests of a valid key never pay for it.
"""
import math
import threading
import time

import redis
from flask import current_app

from app.consent import ratelimit as address_limits
from app.models import ApiRateWindow

WINDOW_SECONDS = 60
FLUSH_EVERY = 10
FLUSH_SECONDS = 1.0
SIGN_IN_BUCKET = "api-key-failure"


def hit(api_key, limit, now=None):
    """Count one request of `api_key`; 0 when it fits within `limit` this minute, else the seconds until
    the next minute begins (for Retry-After)."""
    now = time.time() if now is None else now
    window = int(now // WINDOW_SECONDS)
    hits = _in_redis(lambda client: _redis_add(client, f"loft:api-rate:{api_key.key_hash[:32]}:{window}"))
    if hits is None:
        hits = key_windows.add(api_key.id, api_key.key_hash, window, limit, now)
    if hits <= limit:
        return 0
    return _until_next_window(window, now)


def _until_next_window(window, now):
    return max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))


class _Count:
    __slots__ = ("window", "pending", "known", "flushed_at")

    def __init__(self, window, now):
        self.window, self.pending, self.known, self.flushed_at = window, 0, 0, now


class KeyWindows:
    """One process's counts of each key's requests this minute, added to ApiRateWindow in batches (see above).
    Counts are kept by the key's digest, which no other key ever has, so a count never passes to another key."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}

    def add(self, key_id, key_hash, window, limit, now):
        """Count one request; the key's count this minute as this process knows it."""
        with self.lock:
            count = self.counts.get(key_hash)
            if count is None or count.window != window:
                if len(self.counts) > 1000:  # keys that went quiet
                    self.counts = {h: c for h, c in self.counts.items() if c.window >= window}
                count = self.counts[key_hash] = _Count(window, now)
            count.pending += 1
            seen = count.known + count.pending
            if count.pending < FLUSH_EVERY and seen + FLUSH_EVERY <= limit and now - count.flushed_at < FLUSH_SECONDS:
                return seen
            pending, count.pending, count.flushed_at = count.pending, 0, now
        hits = _add_to_window(key_id, window, pending)
        with self.lock:
            count.known = max(count.known, hits)
            return hits + count.pending


def _add_to_window(key_id, window, pending):
    """Add `pending` requests to the key's row of `window`; the row's new count (every process's)."""
    query = (ApiRateWindow.insert(api_key=key_id, window=window, hits=pending)
             .on_conflict(conflict_target=[ApiRateWindow.api_key, ApiRateWindow.window],
                          update={ApiRateWindow.hits: ApiRateWindow.hits + pending})
             .returning(ApiRateWindow.hits))
    hits = next(iter(query.tuples().execute()))[0]
    if hits == pending:  # this upsert made the row: the key's first requests this minute
        ApiRateWindow.delete().where((ApiRateWindow.api_key == key_id) & (ApiRateWindow.window < window)).execute()
    return hits


key_windows = KeyWindows()


# --- Unknown keys per client address ---------------------------------------------------------------

def sign_in_wait(address, limit, now=None):
    """0 when `address` may present a key it is not known to have, else the seconds to wait (Retry-After)."""
    now = time.time() if now is None else now
    window = int(now // WINDOW_SECONDS)
    failures = _in_redis(lambda client: int(client.get(_failures_key(address, window)) or 0))
    if failures is not None:
        return _until_next_window(window, now) if failures >= limit else 0
    if address_limits.recent(SIGN_IN_BUCKET, address, WINDOW_SECONDS) >= limit:
        return WINDOW_SECONDS  # a sliding minute: by then every failure counted now has aged out
    return 0


def failed_sign_in(address, now=None):
    """Count an unknown or revoked key presented from `address`."""
    now = time.time() if now is None else now
    if _in_redis(lambda client: _redis_add(client, _failures_key(address, int(now // WINDOW_SECONDS)))) is None:
        address_limits.hit(SIGN_IN_BUCKET, address, limit=math.inf, window_seconds=WINDOW_SECONDS)


def _failures_key(address, window):
    return f"loft:api-key-failures:{address_limits.key_for(address)}:{window}"


# --- Redis -----------------------------------------------------------------------------------------

_clients = {}


def _redis():
    """The Redis client of LOFT_QUEUE_URL (one per URL and process: it holds a connection pool), or None
    without Redis."""
    url = current_app.config.get("QUEUE_URL") or ""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    client = _clients.get(url)
    if client is None:
        # A count must not hold a request for long: a Redis that does not answer within a second is away.
        client = _clients[url] = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    return client


def _in_redis(call):
    """call(client) with the Redis client of LOFT_QUEUE_URL; None without Redis, or when Redis does not
    answer: then the database counts, as without Redis, so the API goes on while its counter is away."""
    client = _redis()
    if client is None:
        return None
    try:
        return call(client)
    except redis.RedisError as error:
        current_app.logger.warning("API request count: Redis did not answer (%s); counting in the database", error)
        return None


def _redis_add(client, name):
    """INCR `name` and let it expire after the window it counts (with a minute to spare for clocks that
    differ between boxes), in one round trip; the new count."""
    pipe = client.pipeline(transaction=False)
    pipe.incr(name)
    pipe.expire(name, 2 * WINDOW_SECONDS)
    hits, _ = pipe.execute()
    return hits
