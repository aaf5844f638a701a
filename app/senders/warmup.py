"""Warm-up plans: a little mail on the first day, more each day after, for an SMTP account or a sender domain.

Providers throttle and spam-folder a new domain, IP or mailbox that sends its full volume at once; one
that grows its volume day by day builds a reputation instead (docs: deliverability.md §7). A plan is the
warmup_* fields of an SmtpAccount or a SenderDomain (migrations 0052, 0062), read the same way for both:

  double   warmup_first_day messages on day 1, twice as many each day after, until warmup_target
  fixed    warmup_first_day messages a day, no end
  custom   warmup_first_day on day 1, growing by warmup_growth_percent a day (rounded down), to warmup_target

The ramp ends at full volume: the target, and for an account also per_day (the lower of the two);
without either, FULL_VOLUME. A plan's days are UTC days from warmup_started_on (day 1). The engine holds
the day's cap with permits taken from the database (app/sending/shares.py), counting a rolling 24 hours
like per_day, so no 24 hours ever see more than a day's cap; an account's cap and its From domain's both
hold (the lower applies).

  limit(plan, day)            the plan's cap on that UTC day, or None (no plan, or it reached full volume)
  daily_cap(account, day)     an account's daily cap: the lower of per_day and limit(); 0 = none
  length(plan)                the plan's days before full volume ("day 3 of 14"), None for a fixed cap
  days_left(plan, day)        days until full volume
  in_words(plan, day)         "Warming up: day 3 of 14, 112 messages today, full volume … in about 11 days", or ""
  describe(plan)              the plan itself in words, for the cards
  start_values(form, plan, errors, whole_number)   the plan fields of a form, checked
  from_domain(column, name)   the condition "this From address is of the domain or a subdomain of it"
  domain_sent(domain, now)    messages sent From a domain through the team's accounts in the last 24 hours
"""
import datetime
import math

from peewee import fn

from app.models import Campaign
from app.models import Send
from app.models import SmtpAccount
from app.models import TxMessage
from app.models import utcnow

# Where a warm-up ends without a target or daily limit: the published ramps reach about 250,000
# messages a day after a month, the volume from which a sender's reputation, not its age, decides.
FULL_VOLUME = 250_000
FIRST_DAY_RANGE = (1, 100_000)
GROWTH_RANGE = (1, 200)
TARGET_RANGE = (2, 10_000_000)
PRESETS = {
    "double": "Double daily from the first day to a target",
    "fixed": "Fixed cap (the same number every day, no end)",
    "custom": "Custom (first day, daily increase, target)",
}


def today():
    return utcnow().date()


def scheduled(first_day, growth_percent, days):
    """first_day × (1 + growth)^days, rounded down: in whole numbers, so no float error moves a day's cap."""
    return first_day * (100 + growth_percent) ** days // 100 ** days


def preset_of(plan):
    preset = getattr(plan, "warmup_preset", "custom")
    return preset if preset in PRESETS else "custom"


def growth_of(plan):
    """The daily increase in percent the plan grows by (0 for a fixed cap)."""
    preset = preset_of(plan)
    if preset == "fixed":
        return 0
    return 100 if preset == "double" else max(1, plan.warmup_growth_percent)


def full_volume(plan):
    """Where the ramp ends: the lower of the target and (for an account) per_day, else FULL_VOLUME."""
    caps = [cap for cap in (getattr(plan, "warmup_target", 0), getattr(plan, "per_day", 0)) if cap]
    return min(caps) if caps else FULL_VOLUME


def day_index(plan, day):
    """Days since the plan began: 0 on its first day (a start date still to come counts as day 0)."""
    return max(0, (day - plan.warmup_started_on).days)


def _reached(plan, days):
    """Whether the ramp has reached full volume `days` after the start (never, for a fixed cap)."""
    first, growth = max(1, plan.warmup_first_day), growth_of(plan)
    if growth == 0:
        return False
    end = full_volume(plan)
    # Far past the end the exact power would be a huge number: the logarithm answers first.
    if math.log(first) + days * math.log1p(growth / 100) > math.log(end) + 1:
        return True
    return scheduled(first, growth, days) >= end


def limit(plan, day=None):
    """The plan's cap on the UTC day `day` (today by default), or None: no plan, or it reached full volume."""
    if plan is None or plan.warmup_started_on is None:
        return None
    days = day_index(plan, day or today())
    if _reached(plan, days):
        return None
    return scheduled(max(1, plan.warmup_first_day), growth_of(plan), days)


def daily_cap(account, day=None):
    """The daily cap the engine's permits hold for an account on `day`: the lower of per_day and its plan's; 0 = none."""
    caps = [cap for cap in (account.per_day, limit(account, day)) if cap]
    return min(caps) if caps else 0


def length(plan):
    """The number of days the ramp holds mail back (day 1 to day N, then full volume); None for a fixed
    cap, which never ends; 0 when the first day already reaches full volume."""
    if plan.warmup_started_on is None or growth_of(plan) == 0:
        return None
    first, growth = max(1, plan.warmup_first_day), growth_of(plan)
    if first >= full_volume(plan):
        return 0
    estimate = max(1, math.ceil(math.log(full_volume(plan) / first) / math.log1p(growth / 100)))
    while estimate > 1 and _reached(plan, estimate - 1):
        estimate -= 1
    while not _reached(plan, estimate):
        estimate += 1
    return estimate


def days_left(plan, day=None):
    """Days from `day` until the plan reaches full volume (0: no plan, over, or a fixed cap)."""
    if limit(plan, day) is None or growth_of(plan) == 0:
        return 0
    return length(plan) - day_index(plan, day or today())


def _messages(count):
    return f"{count:,} message{'' if count == 1 else 's'}"


def in_words(plan, day=None):
    """'Warming up: day 3 of 14, 112 messages today, full volume (…) in about 11 days', or '' without a plan."""
    today_limit = limit(plan, day)
    if today_limit is None:
        return ""
    if growth_of(plan) == 0:
        return f"Warming up: a fixed cap of {_messages(today_limit)} a day"
    left = days_left(plan, day)
    volume = f"full volume ({full_volume(plan):,} a day)"
    when = f"{volume} tomorrow" if left == 1 else f"{volume} in about {left} days"
    return (f"Warming up: day {day_index(plan, day or today()) + 1} of {length(plan)}, "
            f"{_messages(today_limit)} today, {when}")


def describe(plan):
    """The plan in words: 'Doubles daily from 50 to 800 a day (5 days)', or '' without one."""
    if plan is None or plan.warmup_started_on is None:
        return ""
    first, preset = plan.warmup_first_day, preset_of(plan)
    if preset == "fixed":
        return f"Fixed cap: {_messages(first)} a day"
    days = length(plan)
    span = f" ({days} day{'' if days == 1 else 's'})" if days else ""
    if preset == "double":
        return f"Doubles daily from {first:,} to {full_volume(plan):,} a day{span}"
    return f"{first:,} on day 1, +{growth_of(plan)} % a day, to {full_volume(plan):,} a day{span}"


def start_values(form, plan, errors, whole_number):
    """The plan fields of an account's or a domain's form: turned on, the plan starts today (or keeps the
    day it began); turned off, it is cleared. `whole_number` is the form's number parser (it writes
    into `errors`). The preset decides which numbers are read: a fixed cap has no increase or target."""
    if not form.get("warmup"):
        return {"warmup_started_on": None}
    preset = form.get("warmup_preset") or "custom"
    if preset not in PRESETS:
        errors["warmup_preset"] = "Choose a warm-up plan: double daily, a fixed cap, or custom."
        return {}
    values = {"warmup_preset": preset,
              "warmup_first_day": whole_number(form, "warmup_first_day", "Messages on the first day", errors,
                                               minimum=FIRST_DAY_RANGE[0], maximum=FIRST_DAY_RANGE[1])}
    if preset == "custom":
        values["warmup_growth_percent"] = whole_number(form, "warmup_growth_percent", "Daily increase (%)", errors,
                                                       minimum=GROWTH_RANGE[0], maximum=GROWTH_RANGE[1])
    if preset == "double":
        values["warmup_growth_percent"] = 100
    if preset in ("double", "custom"):
        # A double-daily plan needs where it ends; a custom one without a target ramps to per_day (or 250,000).
        required = preset == "double" or str(form.get("warmup_target", "")).strip() not in ("", "0")
        values["warmup_target"] = (whole_number(form, "warmup_target", "Target a day", errors,
                                                minimum=TARGET_RANGE[0], maximum=TARGET_RANGE[1])
                                   if required else 0)
        if (required and "warmup_target" not in errors and "warmup_first_day" not in errors
                and values["warmup_target"] <= values["warmup_first_day"]):
            errors["warmup_target"] = (f"Target a day: enter more than the first day's {values['warmup_first_day']:,} "
                                       "messages, or choose a fixed cap.")
    else:
        values["warmup_target"] = 0
    started = plan.warmup_started_on if plan is not None else None
    values["warmup_started_on"] = started or today()
    return {field: value for field, value in values.items() if field not in errors}


# --- What a sender domain's plan counts --------------------------------------------------------------

def from_domain(column, name):
    """`column` (a From address) is at the domain or one of its subdomains: a verified example.com signs
    and covers news.example.com too (domains.domain_for_sender), so its plan counts both."""
    return column.endswith("@" + name) | column.endswith("." + name)


def domain_sends(domain, since):
    """(campaign sends, transactional messages) sent From the domain through the team's accounts since
    `since`: queries of their sent_at. The campaign sends are found through the team's accounts, so the
    (smtp_account, sent_at) index bounds the read to the window."""
    accounts = SmtpAccount.select(SmtpAccount.id).where(SmtpAccount.team == domain.team_id)
    sends = (Send.select(Send.sent_at).join(Campaign, on=(Send.campaign == Campaign.id))
             .where(Send.smtp_account.in_(accounts) & (Send.sent_at >= since)
                    & from_domain(Campaign.from_email, domain.domain)))
    tx = TxMessage.select(TxMessage.sent_at).where((TxMessage.team == domain.team_id) & (TxMessage.sent_at >= since)
                                                   & from_domain(TxMessage.from_email, domain.domain))
    return sends, tx


def domain_sent(domain, now=None):
    """Messages sent From the domain (and its subdomains) in the last 24 hours, for the domain page."""
    sends, tx = domain_sends(domain, (now or utcnow()) - datetime.timedelta(days=1))
    return (sends.select(fn.COUNT(Send.id)).scalar() or 0) + (tx.select(fn.COUNT(TxMessage.id)).scalar() or 0)
