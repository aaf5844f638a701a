"""The instance's plans and the arithmetic of what a team owes.

A plan is a JSON object in the instance setting "billing_plans" (app/settings.py, edited under Admin >
Billing): {"key", "name", "free_emails", "price_per_thousand" (a decimal string, "0.25"), "currency"}.
The setting "billing_default_plan" names the plan of a team without its own (Team.billing_plan = "").
The default: "Free 10,000 emails a month, then $0.25 per 1,000".

Money is Decimal, never float; an amount is rounded to the cent (half up) once, at the end. Emails past
the free allowance are charged pro rata, to the cent: 15,500 billable emails at $0.25 per 1,000 are $3.875,
shown as $3.88 (the page says so).
"""
import dataclasses
import decimal
import re

from app import settings as instance_settings
from app.errors import Problem

CENT = decimal.Decimal("0.01")
THOUSAND = decimal.Decimal(1000)
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
MAX_PLANS = 50
DEFAULT_PLANS = [{"key": "standard", "name": "Free 10,000 emails a month, then $0.25 per 1,000",
                  "free_emails": 10000, "price_per_thousand": "0.25", "currency": "USD"}]
DEFAULT_PLAN_KEY = "standard"


class PlanError(Problem):
    """A plan refused, in words, with the field it is about."""


@dataclasses.dataclass(frozen=True)
class Plan:
    key: str
    name: str
    free_emails: int
    price_per_thousand: decimal.Decimal
    currency: str = "USD"

    def as_setting(self):
        return {"key": self.key, "name": self.name, "free_emails": self.free_emails,
                "price_per_thousand": str(self.price_per_thousand), "currency": self.currency}

    def money(self, amount):
        """'$3.75', '€3.75', or '3.75 CHF' for a currency without a symbol here."""
        text = f"{amount.quantize(CENT, rounding=decimal.ROUND_HALF_UP):,}"
        symbol = CURRENCY_SYMBOLS.get(self.currency)
        return f"{symbol}{text}" if symbol else f"{text} {self.currency}"

    def billable(self, emails):
        return max(int(emails) - self.free_emails, 0)

    def amount_due(self, emails):
        """What `emails` sent in a month cost on this plan: Decimal, to the cent."""
        exact = self.billable(emails) * self.price_per_thousand / THOUSAND
        return exact.quantize(CENT, rounding=decimal.ROUND_HALF_UP)


def parse_plan(values):
    """A Plan from a form's or a setting's values, or PlanError saying which value is wrong."""
    key = str(values.get("key", "")).strip().lower()
    if not KEY_PATTERN.match(key):
        raise PlanError("Give the plan a short key: lower-case letters, digits, - or _, such as “standard”.", "key")
    name = " ".join(str(values.get("name", "")).split())
    if not name or len(name) > 120:
        raise PlanError("Give the plan a name people understand, up to 120 characters.", "name")
    try:
        free = int(str(values.get("free_emails", "")).replace(",", "").strip())
    except ValueError:
        raise PlanError("The free allowance is a whole number of emails, such as 10000.", "free_emails") from None
    if not 0 <= free <= 2_000_000_000:
        raise PlanError("The free allowance is between 0 and 2,000,000,000 emails.", "free_emails")
    try:
        price = decimal.Decimal(str(values.get("price_per_thousand", "")).strip().lstrip("$€£"))
    except decimal.InvalidOperation:
        raise PlanError("The price per 1,000 emails is an amount such as 0.25.", "price_per_thousand") from None
    if not price.is_finite() or price < 0 or price > 10000 or price.as_tuple().exponent < -4:
        raise PlanError("The price per 1,000 emails is between 0 and 10,000, with at most 4 decimals.",
                        "price_per_thousand")
    currency = str(values.get("currency", "USD")).strip().upper() or "USD"
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise PlanError("The currency is a three-letter ISO 4217 code, such as USD or EUR.", "currency")
    return Plan(key, name, free, price.normalize() if price else decimal.Decimal("0"), currency)


def all_plans():
    """The instance's plans, in the order they were saved (the defaults when none were)."""
    stored = instance_settings.get_setting("billing_plans") or DEFAULT_PLANS
    plans = []
    for values in stored:
        try:
            plans.append(parse_plan(values))
        except (PlanError, AttributeError):
            continue  # edited by hand into something invalid: left out rather than billed wrongly
    return plans or [parse_plan(DEFAULT_PLANS[0])]


def default_plan():
    plans = all_plans()
    key = instance_settings.get_setting("billing_default_plan") or DEFAULT_PLAN_KEY
    return next((plan for plan in plans if plan.key == key), plans[0])


def plan_for(team):
    """The team's plan: its own when it has one the instance still offers, else the default plan."""
    key = getattr(team, "billing_plan", "") or ""
    return next((plan for plan in all_plans() if key and plan.key == key), None) or default_plan()


def save_plans(rows, default_key):
    """Replace the instance's plans with `rows` (dicts of form values; blank rows skipped) and set the default.
    PlanError (naming the row) and nothing saved when a row is wrong."""
    plans = []
    for index, values in enumerate(rows, start=1):
        if not any(str(value).strip() for value in values.values()):
            continue
        try:
            plans.append(parse_plan(values))
        except PlanError as exc:
            raise PlanError(f"Plan {index}: {exc.message}", f"{exc.field}-{index}") from None
    if not plans:
        raise PlanError("Keep at least one plan: every team is billed on one.", "key-1")
    if len(plans) > MAX_PLANS:
        raise PlanError(f"At most {MAX_PLANS} plans.")
    keys = [plan.key for plan in plans]
    if len(set(keys)) != len(keys):
        raise PlanError("Two plans have the same key: give each its own.")
    if default_key not in keys:
        default_key = keys[0]
    instance_settings.save_settings({"billing_plans": [plan.as_setting() for plan in plans],
                                     "billing_default_plan": default_key})
    return plans
