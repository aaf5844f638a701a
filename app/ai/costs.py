"""What AI generations cost: the price table, each team's spending per month and its monthly budget.

Costs are stored per generation in millionths of a US dollar (AiGeneration.cost_micros, an integer), so
a month's total is an exact sum. Tokens come from the provider's own count (Gemini's usageMetadata).
Months are calendar months in UTC, for the budget and the usage page alike: a budget renews at 00:00 UTC
on the 1st.
"""
import copy
import datetime

from peewee import fn

from app import settings as instance_settings
from app.db import month_of
from app.models import AiGeneration
from app.models import utcnow
from app.usage import last_months

MICROS_PER_USD = 1_000_000

# Google's public list prices for the Gemini API (paid tier, text, USD per 1 million tokens), as published on
# ai.google.dev/gemini-api/docs/pricing in 2025; gemini-2.5-pro's are for prompts up to 200k tokens.
# An instance administrator replaces the table under Admin > AI when they change.
DEFAULT_PRICES = {
    "gemini-2.5-flash": {"input_per_million": 0.30, "output_per_million": 2.50},
    "gemini-2.5-flash-lite": {"input_per_million": 0.10, "output_per_million": 0.40},
    "gemini-2.5-pro": {"input_per_million": 1.25, "output_per_million": 10.00},
    "gemini-2.0-flash": {"input_per_million": 0.10, "output_per_million": 0.40},
}


def default_prices():
    """{model: {"input_per_million": usd, "output_per_million": usd}}: the provider's public list."""
    return copy.deepcopy(DEFAULT_PRICES)


def prices():
    """The price table in force: the instance's own (Admin > AI), else the defaults."""
    return instance_settings.get_setting("ai_prices") or default_prices()


def price_for(model, table=None):
    """The price row of `model`, or None when the table does not know it. A dated or suffixed model name
    ("gemini-2.5-flash-preview-09-2025", "models/gemini-2.5-flash") takes the row of the longest listed
    name it starts with."""
    table = prices() if table is None else table
    name = (model or "").removeprefix("models/")
    if name in table:
        return table[name]
    listed = [key for key in table if name.startswith(key + "-")]
    return table[max(listed, key=len)] if listed else None


def is_priced(model, table=None):
    return price_for(model, table) is not None


def cost_micros(model, input_tokens, output_tokens, table=None):
    """The cost in millionths of a US dollar; 0 for a model the price table does not know."""
    row = price_for(model, table)
    if row is None:
        return 0
    # tokens x (USD per million tokens) is exactly millionths of a USD.
    return round(int(input_tokens) * float(row.get("input_per_million", 0))
                 + int(output_tokens) * float(row.get("output_per_million", 0)))


def cost_usd(model, input_tokens, output_tokens, prices=None):
    """The cost in US dollars (0.0 for a model the price table does not know)."""
    return cost_micros(model, input_tokens, output_tokens, prices) / MICROS_PER_USD


def usd(amount):
    """"$10.00", or "$0.0028" for an amount under a cent (a single generation often is)."""
    amount = float(amount)
    return f"${amount:,.2f}" if amount == 0 or abs(amount) >= 0.01 else f"${amount:.4f}"


def month_start(now=None):
    now = now or utcnow()
    return datetime.datetime(now.year, now.month, 1)


def next_month_start(now=None):
    start = month_start(now)
    return datetime.datetime(start.year + start.month // 12, start.month % 12 + 1, 1)


def spent_micros_this_month(team, now=None):
    total = (AiGeneration.select(fn.SUM(AiGeneration.cost_micros))
             .where((AiGeneration.team == team) & (AiGeneration.created_at >= month_start(now)))
             .scalar())
    return int(total or 0)


def spent_this_month(team, now=None):
    """US dollars the team's generations cost since the 1st of this month (UTC); cache hits cost nothing."""
    return spent_micros_this_month(team, now) / MICROS_PER_USD


def budget_usd(team):
    """The team's monthly budget in US dollars: its own, else the instance default; None = no limit
    (a budget of 0 means no limit; turning AI off for a team is its own switch)."""
    own = team.ai_monthly_budget_usd
    budget = own if own is not None else instance_settings.get_setting("ai_default_monthly_budget_usd")
    try:
        budget = float(budget)
    except (TypeError, ValueError):
        return None
    return budget if budget > 0 else None


def month_costs(team, months=12, now=None):
    """[("YYYY-MM", usd, generations)] for the last `months` months, oldest first, 0 for quiet months.
    Generations count the provider calls made (cache hits are free and not counted)."""
    keys = last_months(months, now)
    if not keys:
        return []
    month = month_of(AiGeneration.created_at)
    first = datetime.datetime(int(keys[0][:4]), int(keys[0][5:]), 1)
    rows = (AiGeneration.select(month.alias("month"), fn.SUM(AiGeneration.cost_micros), fn.COUNT(AiGeneration.id))
            .where((AiGeneration.team == team) & (AiGeneration.created_at >= first))
            .group_by(month)
            .tuples())
    found = {key: (int(micros or 0), count) for key, micros, count in rows}
    return [(key, found.get(key, (0, 0))[0] / MICROS_PER_USD, found.get(key, (0, 0))[1]) for key in keys]


def prompt_use_counts(team=None):
    """{(prompt, version): uses} over the instance (or one team): each provider call and each cache hit."""
    query = (AiGeneration.select(AiGeneration.prompt, AiGeneration.version,
                                 fn.COUNT(AiGeneration.id) + fn.SUM(AiGeneration.cache_hits))
             .group_by(AiGeneration.prompt, AiGeneration.version))
    if team is not None:
        query = query.where(AiGeneration.team == team)
    return {(prompt, version): int(uses or 0) for prompt, version, uses in query.tuples()}
