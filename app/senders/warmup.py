"""Warm-up of an SMTP account: a little mail on its first day, more each day after.

Providers throttle and spam-folder a new domain, IP or mailbox that sends its full volume at once; one
that grows its volume day by day builds a reputation instead. An account in warm-up has a daily cap of
warmup_first_day messages on its first (UTC) day, growing by warmup_growth_percent a day, rounded down,
until it reaches the account's own daily limit. The engine holds that cap the way it holds per_day:
with permits taken from the database (app/sending/shares.py), so it is exact across every run and
worker; like per_day it counts a rolling 24 hours, which never sends more than the day's cap in a day.

  limit(account, day)         the warm-up cap of that UTC day, or None (no warm-up, or it is over)
  daily_cap(account, day)     the daily cap the permits hold: the lower of per_day and limit(); 0 = none
  days_left(account, day)     days until full volume
  in_words(account, day)      "Warming up: day 3, 112 messages today, full volume in about 6 days", or ""
  start_values(form, account) the warm-up fields of the account form, checked
"""
import math

from app.models import utcnow

# Where a warm-up ends for an account without a daily limit: the published ramps reach about 250,000
# messages a day after a month, the volume from which a sender's reputation, not its age, decides.
FULL_VOLUME = 250_000
FIRST_DAY_RANGE = (1, 100_000)
GROWTH_RANGE = (1, 200)


def today():
    return utcnow().date()


def scheduled(first_day, growth_percent, days):
    """first_day × (1 + growth)^days, rounded down: in whole numbers, so no float error moves a day's cap."""
    return first_day * (100 + growth_percent) ** days // 100 ** days


def full_volume(account):
    return account.per_day or FULL_VOLUME


def day_index(account, day):
    """Days since the warm-up began: 0 on its first day (a start date still to come counts as day 0)."""
    return max(0, (day - account.warmup_started_on).days)


def _reached(account, days):
    """Whether the schedule has reached full volume `days` after the start."""
    end = full_volume(account)
    first, growth = max(1, account.warmup_first_day), max(1, account.warmup_growth_percent)
    # Far past the end the exact power would be a huge number: the logarithm answers first.
    if math.log(first) + days * math.log1p(growth / 100) > math.log(end) + 1:
        return True
    return scheduled(first, growth, days) >= end


def limit(account, day=None):
    """The warm-up cap of the UTC day `day` (today by default), or None: no warm-up, or it reached full volume."""
    if account.warmup_started_on is None:
        return None
    days = day_index(account, day or today())
    if _reached(account, days):
        return None
    return scheduled(max(1, account.warmup_first_day), max(1, account.warmup_growth_percent), days)


def daily_cap(account, day=None):
    """The daily cap the engine's permits hold on `day`: the lower of per_day and the warm-up's; 0 = none."""
    caps = [cap for cap in (account.per_day, limit(account, day)) if cap]
    return min(caps) if caps else 0


def days_left(account, day=None):
    """Days from `day` until the warm-up reaches full volume (0: no warm-up, or over)."""
    if limit(account, day) is None:
        return 0
    days = day_index(account, day or today())
    first, growth = max(1, account.warmup_first_day), max(1, account.warmup_growth_percent)
    estimate = max(days + 1, math.ceil(math.log(full_volume(account) / first) / math.log1p(growth / 100)))
    while estimate > days + 1 and _reached(account, estimate - 1):
        estimate -= 1
    while not _reached(account, estimate):
        estimate += 1
    return estimate - days


def in_words(account, day=None):
    """'Warming up: day 3, 112 messages today, full volume in about 6 days', or '' when not warming up."""
    today_limit = limit(account, day)
    if today_limit is None:
        return ""
    left = days_left(account, day)
    volume = f"full volume ({full_volume(account):,} a day)"
    when = f"{volume} tomorrow" if left == 1 else f"{volume} in about {left} days"
    return (f"Warming up: day {day_index(account, day or today()) + 1}, "
            f"{today_limit:,} message{'' if today_limit == 1 else 's'} today, {when}")


def start_values(form, account, errors, whole_number):
    """The warm-up fields of the account form: turned on, it starts today (or keeps the day it began);
    turned off, it is cleared. `whole_number` is the form's number parser (it writes into `errors`)."""
    if not form.get("warmup"):
        return {"warmup_started_on": None}
    values = {
        "warmup_first_day": whole_number(form, "warmup_first_day", "Messages on the first day", errors,
                                         minimum=FIRST_DAY_RANGE[0], maximum=FIRST_DAY_RANGE[1]),
        "warmup_growth_percent": whole_number(form, "warmup_growth_percent", "Daily increase (%)", errors,
                                              minimum=GROWTH_RANGE[0], maximum=GROWTH_RANGE[1]),
    }
    started = account.warmup_started_on if account is not None else None
    values["warmup_started_on"] = started or today()
    return {field: value for field, value in values.items() if field not in errors}
