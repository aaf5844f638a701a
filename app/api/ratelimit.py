"""Each API key's requests per minute: a fixed window counted in the database.

One row per key and minute (ApiRateWindow), raised by one upsert that returns the new count, so every web
process counts into the same window and two requests at once cannot both take the last slot. A key's
older minutes are deleted when it opens a new one, so the table holds about one row per active key.
"""
import math
import time

from app.models import ApiRateWindow

WINDOW_SECONDS = 60


def hit(api_key, limit, now=None):
    """Count one request of `api_key`; 0 when it fits within `limit` this minute, else the seconds until
    the next minute begins (for Retry-After)."""
    now = time.time() if now is None else now
    window = int(now // WINDOW_SECONDS)
    query = (ApiRateWindow.insert(api_key=api_key.id, window=window, hits=1)
             .on_conflict(conflict_target=[ApiRateWindow.api_key, ApiRateWindow.window],
                          update={ApiRateWindow.hits: ApiRateWindow.hits + 1})
             .returning(ApiRateWindow.hits))
    hits = next(iter(query.tuples().execute()))[0]
    if hits == 1:
        ApiRateWindow.delete().where((ApiRateWindow.api_key == api_key.id)
                                     & (ApiRateWindow.window < window)).execute()
    if hits <= limit:
        return 0
    return max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))
