"""Admin > AI: the instance's AI settings form (key, provider, model, base URL, prices, limits), each team's
switch and budget, and the prompts list.

The settings keys, their defaults and how a generation reads them live in app/settings.py and
app/ai/generate.py; this module is the form's home: what it shows, how it checks and what it saves.
"""
import math
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app
from peewee import fn

from app import security
from app import settings as instance_settings
from app.ai import costs
from app.ai import generate
from app.ai import prompts
from app.ai import providers
from app.errors import Problem
from app.models import AiGeneration
from app.models import Team

# A model name goes into the provider's URL path (models/<name>:generateContent): letters, digits and . _ - : /
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$")
MAX_PRICE_ROWS = 50
MAX_PRICE_PER_MILLION = 10_000.0
MAX_BUDGET_USD = 1_000_000.0
MAX_REQUESTS_PER_HOUR = 100_000
KEY_HINT_LENGTH = 4


class AiSettingsError(Problem):
    pass


@dataclass(frozen=True)
class TeamAiRow:
    team: Team
    spent_usd: float
    budget_usd: float | None  # what applies: the team's own, else the instance default; None = no limit

    @property
    def own_budget(self):
        """The team's own budget as the form shows it ("" = the instance default)."""
        return _plain(self.team.ai_monthly_budget_usd)


@dataclass(frozen=True)
class PromptRow:
    prompt: prompts.Prompt
    model: str  # the model it runs on ("default" resolved to the instance's model)
    uses: int


@dataclass(frozen=True)
class ApiKeyState:
    present: bool  # a key is in force (saved here or set by LOFT_GEMINI_API_KEY)
    saved: bool  # saved in Admin > AI
    hint: str  # the key's last characters ("…abcd"); "" for a key too short to show any of safely


def key_state():
    """Whether a key is saved here or set by the environment, and how it ends; never the key itself."""
    key = instance_settings.get_setting("ai_api_key") or ""
    hint = f"…{key[-KEY_HINT_LENGTH:]}" if len(key) > 2 * KEY_HINT_LENGTH else ""
    # A blank saved key falls back to the environment's (app/settings.py), so the same key is the server's.
    return ApiKeyState(present=bool(key), saved=bool(key) and key != current_app.config.get("GEMINI_API_KEY", ""),
                       hint=hint)


def _price_rows(prices):
    return [{"model": model, "input": _plain(row.get("input_per_million", 0)),
             "output": _plain(row.get("output_per_million", 0))} for model, row in sorted(prices.items())]


def _plain(number):
    """A price or budget as a person types it: 0.3, 2.5, 10 (no trailing zeros, no exponent)."""
    return f"{float(number):.6f}".rstrip("0").rstrip(".") if number is not None else ""


def form_values(current=None):
    """The form as stored: the price table (the provider's public prices until an admin changes them) and
    every other setting but the key, which is never shown back."""
    current = current if current is not None else instance_settings.get_settings()
    return {
        "ai_provider": current["ai_provider"],
        "ai_model": current["ai_model"],
        "ai_base_url": current["ai_base_url"],
        "ai_default_monthly_budget_usd": _plain(current["ai_default_monthly_budget_usd"]),
        "ai_user_requests_per_hour": str(current["ai_user_requests_per_hour"]),
        "prices": _price_rows(current["ai_prices"] or costs.default_prices()),
    }


def submitted_price_rows(form):
    """The price rows as typed (price.<i>.model / .input / .output), in order, for showing the form again."""
    indexes = sorted({int(match.group(1)) for name in form
                      if (match := re.fullmatch(r"price\.(\d{1,3})\.(model|input|output)", name))})
    return [{"model": form.get(f"price.{i}.model", "").strip(), "input": form.get(f"price.{i}.input", "").strip(),
             "output": form.get(f"price.{i}.output", "").strip()} for i in indexes]


def _number(text, errors, field, message, minimum=0.0, maximum=math.inf):
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not minimum <= value <= maximum:  # NaN fails every comparison, so "abc" and "nan" land here too
        errors[field] = message
        return None
    return value


def _check_base_url(url):
    """The reason `url` cannot be the provider's base URL, or "" when it can ("" = the public endpoint)."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a port that is not a number)
    except ValueError:
        return "Enter an address such as https://generativelanguage.googleapis.com (or leave it empty)."
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        return "Enter an address starting with https:// (or http:// for a server on this machine), or leave it empty."
    if parts.username or parts.password:
        return "Put no user name or password in the address: the API key field is the place for the key."
    if parts.query or parts.fragment:
        return "Enter the server's address only, without ? or #: Loft adds the API path itself."
    return ""


def _check_prices(rows, errors):
    prices = {}
    for i, row in enumerate(rows):
        if not row["model"]:  # a row whose model is emptied is removed
            if row["input"] or row["output"]:
                errors[f"price.{i}.model"] = "Name the model these prices are for, or empty the row to remove it."
            continue
        if not MODEL_NAME.match(row["model"]):
            errors[f"price.{i}.model"] = "A model name is letters, digits and . _ - : / (e.g. gemini-2.5-flash)."
        elif row["model"] in prices:
            errors[f"price.{i}.model"] = f"{row['model']} has a row already: keep one price per model."
        message = "Enter a price in US dollars per million tokens: a number of 0 or more, e.g. 0.30."
        input_price = _number(row["input"], errors, f"price.{i}.input", message, maximum=MAX_PRICE_PER_MILLION)
        output_price = _number(row["output"], errors, f"price.{i}.output", message, maximum=MAX_PRICE_PER_MILLION)
        prices[row["model"]] = {"input_per_million": input_price, "output_per_million": output_price}
    if len(prices) > MAX_PRICE_ROWS:
        errors[""] = f"Keep the price table to {MAX_PRICE_ROWS} models."
    return prices


def validate(form):
    """The settings to save from the Admin > AI form, or AiSettingsError with a message per field.

    An empty key field keeps the saved key; "ai_api_key_remove" removes it. A price table equal to the
    provider's public prices is stored as {} so it follows them when they change."""
    errors = {}
    values = {
        "ai_provider": form.get("ai_provider", "").strip(),
        "ai_model": form.get("ai_model", "").strip(),
        "ai_base_url": form.get("ai_base_url", "").strip().rstrip("/"),
    }
    if values["ai_provider"] not in providers.names():
        errors["ai_provider"] = f"Choose one of the providers: {', '.join(providers.names())}."
    if not MODEL_NAME.match(values["ai_model"]):
        errors["ai_model"] = "Enter the model's name as the provider spells it, e.g. gemini-2.5-flash."
    if reason := _check_base_url(values["ai_base_url"]):
        errors["ai_base_url"] = reason
    values["ai_default_monthly_budget_usd"] = _number(
        form.get("ai_default_monthly_budget_usd", ""), errors, "ai_default_monthly_budget_usd",
        "Enter the budget in US dollars: a number of 0 or more (0 = no limit), e.g. 10.", maximum=MAX_BUDGET_USD)
    rate = form.get("ai_user_requests_per_hour", "").strip()
    if rate.isdigit() and int(rate) <= MAX_REQUESTS_PER_HOUR:
        values["ai_user_requests_per_hour"] = int(rate)
    else:
        errors["ai_user_requests_per_hour"] = (f"Enter a whole number of requests from 0 (no limit) to "
                                               f"{MAX_REQUESTS_PER_HOUR:,}, e.g. 60.")
    prices = _check_prices(submitted_price_rows(form), errors)
    key = form.get("ai_api_key", "")
    if key and (len(key) > 500 or any(c.isspace() for c in key)):
        errors["ai_api_key"] = "An API key is one word without spaces: paste it again."
    if errors:
        raise AiSettingsError(errors=errors)
    values["ai_prices"] = {} if prices == costs.default_prices() else prices
    if key:
        values["ai_api_key"] = security.encrypt(key)
    elif form.get("ai_api_key_remove"):
        values["ai_api_key"] = ""
    return values


def save(form):
    """Check and store the Admin > AI form; returns what was saved."""
    values = validate(form)
    instance_settings.save_settings(values)
    return values


def price_warning(values):
    """Words for the admin when the chosen model has no price: its generations would count $0 against budgets."""
    table = values["ai_prices"] or costs.default_prices()
    if costs.is_priced(values["ai_model"], table):
        return ""
    return (f"The price table has no row for {values['ai_model']}, so its generations count as $0 and no budget "
            "stops them: add a row with its prices.")


def test_connection():
    """(ok, words): the provider's short answer with the saved settings, or why it failed."""
    try:
        return True, generate.test_connection()
    except Problem as exc:  # AiError, ProviderError: both carry the words for the admin
        return False, exc.message


# --- Teams ---------------------------------------------------------------------

def team_rows():
    """Every team with its AI switch, the budget that applies and what it spent this month."""
    spent = dict(AiGeneration.select(AiGeneration.team, fn.SUM(AiGeneration.cost_micros))
                 .where(AiGeneration.created_at >= costs.month_start())
                 .group_by(AiGeneration.team).tuples())
    return [TeamAiRow(team, (spent.get(team.id) or 0) / costs.MICROS_PER_USD, costs.budget_usd(team))
            for team in Team.select().order_by(Team.name, Team.id)]


def team_row(team):
    return TeamAiRow(team, costs.spent_this_month(team), costs.budget_usd(team))


def save_team(team, form):
    """Turn AI on or off for one team and set its monthly budget (empty = the instance default)."""
    budget_text = form.get("ai_monthly_budget_usd", "").strip()
    budget = None
    if budget_text:
        errors = {}
        budget = _number(budget_text, errors, "ai_monthly_budget_usd",
                         "Enter the team's budget in US dollars: a number of 0 or more (0 = no limit), or leave "
                         "it empty for the default.", maximum=MAX_BUDGET_USD)
        if errors:
            raise AiSettingsError(errors=errors)
    team.ai_enabled = bool(form.get("ai_enabled"))
    team.ai_monthly_budget_usd = budget
    team.save(only=[Team.ai_enabled, Team.ai_monthly_budget_usd])
    return team


# --- Prompts -------------------------------------------------------------------

def prompt_rows():
    """Every version of every prompt, with the model it runs on and how often it was used (cache hits too)."""
    uses = costs.prompt_use_counts()
    model = instance_settings.get_setting("ai_model")
    return [PromptRow(prompt, model if prompt.model == "default" else prompt.model,
                      uses.get((prompt.name, prompt.version), 0)) for prompt in prompts.all_prompts()]
