"""What the billing meter shows a team: the month so far, a projection to the month's end, the amount due so
far and projected on the team's plan, past months, and a month's CSV statement.

Months are the team's calendar months (app/usage.py). The projection is linear on the time elapsed in the
month, measured in the team's zone (a DST month is as long as it really is): the month so far divided by the
share of the month gone by. It is a projection, and the page says so.
"""
import csv
import dataclasses
import io
import re

from app import usage
from app.billing import plans
from app.contacts.export import neutralise
import decimal

from peewee import fn

from app.ai.costs import MICROS_PER_USD
from app.models import AiGeneration
from app.dashboard.services import COUNT_FRESH
from app.models import Contact
from app.models import ContactCount
from app.models import utcnow
from app.teams import standing

MONTH_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
PAST_MONTHS = 12


@dataclasses.dataclass
class MonthFigures:
    month: str
    marketing: int
    transactional: int
    total: int
    domains: list
    amount: object  # Decimal


def valid_month(text):
    """The month key "YYYY-MM" when `text` is one (from 2000 on), else None."""
    found = MONTH_PATTERN.match(str(text or ""))
    return text if found and int(found.group(1)) >= 2000 else None


def month_figures(team, month, plan=None):
    plan = plan or plans.plan_for(team)
    counts = usage.month_breakdown(team, month)
    return MonthFigures(month, counts["marketing"], counts["transactional"], counts["total"], counts["domains"],
                        plan.amount_due(counts["total"]))


def ai_for_month(team, month):
    """(tokens in + out, cost in US dollars as Decimal) of the team's AI generations in its month (their
    recorded cost, app/ai/costs.py: read here, never computed again)."""
    start, end = usage.month_bounds(month, team)
    tokens, micros = (AiGeneration.select(fn.SUM(AiGeneration.input_tokens + AiGeneration.output_tokens),
                                          fn.SUM(AiGeneration.cost_micros))
                      .where((AiGeneration.team == team.id) & (AiGeneration.created_at >= start)
                             & (AiGeneration.created_at < end)).tuples().first()) or (0, 0)
    return int(tokens or 0), (decimal.Decimal(int(micros or 0)) / MICROS_PER_USD).quantize(decimal.Decimal("0.0001"))


def contacts_stored(team, now=None):
    """The team's contacts (every status): the minute roll-up's count while fresh (app/reports/rollup.py, as the
    dashboard reads it), so the page never counts a million rows; counted now when that is missing or stale."""
    counted = ContactCount.get_or_none(ContactCount.team == team.id)
    if counted is not None and counted.counted_at >= (now or utcnow()) - COUNT_FRESH:
        return counted.total
    return Contact.select().where(Contact.team == team.id).count()


def elapsed_share(team, now=None):
    """The share (0..1] of the team's current month gone by at `now`, from real elapsed time."""
    now = now or utcnow()
    start, end = usage.month_bounds(usage.month_key(team, now), team)
    return max((now - start).total_seconds(), 1.0) / (end - start).total_seconds()


def projection(team, total, now=None):
    """Emails the month would end with at the pace so far (linear on the time elapsed)."""
    return int(round(total / elapsed_share(team, now)))


def meter(team, now=None):
    """Everything the meter page shows, as a dict."""
    now = now or utcnow()
    plan = plans.plan_for(team)
    month = usage.month_key(team, now)
    current = month_figures(team, month, plan)
    projected = projection(team, current.total, now)
    history = usage.usage_for(team, PAST_MONTHS, now)
    local = usage.local_now(team, now)
    cap = team.monthly_email_cap
    return {
        "plan": plan, "month": month, "current": current, "projected": projected,
        "projected_amount": plan.amount_due(projected),
        "history": [(key, total, plan.amount_due(total)) for key, total in history],
        "statement_months": usage.months_with_usage(team),
        "contacts": contacts_stored(team, now),
        "ai": ai_for_month(team, month),
        "cap": cap, "cap_share": (min(current.total / cap, 1.0) if cap else (1.0 if cap == 0 else None)),
        "suspension": standing.suspension_reason(team),
        "local_now": local, "zone": team.time_zone or "UTC",
        "day": local.day, "days": (usage.month_bounds(month, team)[1] - usage.month_bounds(month, team)[0]).days,
    }


def statement_rows(team, month):
    """The CSV statement of one month: a header, a row per stream and sender domain, then the totals and the
    amount due on the team's plan. Every cell formula-safe (a domain or team name is the team's own text)."""
    plan = plans.plan_for(team)
    figures = month_figures(team, month, plan)
    start, end = usage.month_bounds(month, team)
    ai_tokens, ai_cost = ai_for_month(team, month)
    rows = [["Loft statement", team.name], ["Month", month], ["Time zone", team.time_zone or "UTC"],
            ["From (UTC)", start.isoformat(sep=" ")], ["Until (UTC)", end.isoformat(sep=" ")],
            ["Plan", plan.name], [],
            ["Stream", "Sender domain", "Emails"]]
    for domain, marketing, transactional in figures.domains:
        if marketing:
            rows.append(["marketing", domain or "(not recorded)", marketing])
        if transactional:
            rows.append(["transactional", domain or "(not recorded)", transactional])
    rows += [[], ["Marketing emails", "", figures.marketing], ["Transactional emails", "", figures.transactional],
             ["Total emails", "", figures.total], ["Free allowance", "", plan.free_emails],
             ["Billable emails", "", plan.billable(figures.total)],
             [f"Price per 1,000 ({plan.currency})", "", str(plan.price_per_thousand)],
             [f"Amount due ({plan.currency})", "", str(figures.amount)], [],
             ["AI tokens (not in the amount above)", "", ai_tokens], ["AI cost (USD, at the provider's prices)", "",
                                                                     str(ai_cost)]]
    return [[neutralise(cell) for cell in row] for row in rows]


def statement_csv(team, month):
    out = io.StringIO()
    csv.writer(out).writerows(statement_rows(team, month))
    return out.getvalue()


def statement_filename(team, month):
    """loft-statement-<team>-<month>.csv, the team's name reduced to safe characters."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", team.name).strip("-").lower()[:40] or f"team-{team.id}"
    return f"loft-statement-{slug}-{month}.csv"
