"""A team's AI usage page: this month's cost against the budget, the last twelve months, and which prompts
it used this month. Costs and budgets themselves are app/ai/costs.py; this puts them together for the page."""
from dataclasses import dataclass

from peewee import fn

from app.ai import costs
from app.ai import generate
from app.models import AiGeneration

MONTHS_SHOWN = 12


@dataclass(frozen=True)
class PromptUse:
    prompt: str
    version: str
    generations: int  # answers the provider gave this month
    cache_hits: int  # times one of those answers was served again from the cache
    cost_usd: float


@dataclass(frozen=True)
class TeamUsage:
    status: generate.AiStatus
    spent_usd: float
    budget_usd: float | None  # None = no limit
    months: list  # [(YYYY-MM, usd, generations)], oldest first
    prompts: list  # [PromptUse] of this month, most used first

    @property
    def share_of_budget(self):
        """Spent / budget, capped at 1 for the meter; None without a limit."""
        return min(self.spent_usd / self.budget_usd, 1.0) if self.budget_usd else None

    @property
    def budget_reached(self):
        return bool(self.budget_usd) and self.spent_usd >= self.budget_usd

    def chart_description(self):
        """The cost chart in words, in dollars and cents."""
        if not self.months:
            return "No AI use yet."
        costs_by_month = [cost for _, cost, _ in self.months]
        return (f"From {self.months[0][0]} to {self.months[-1][0]}: ${sum(costs_by_month):,.2f} in total, "
                f"at most ${max(costs_by_month):,.2f} in one month.")

    @property
    def ever_used(self):
        return any(generations for _, _, generations in self.months)


def prompts_this_month(team):
    """How often each prompt version answered for `team` this month, and what that cost."""
    generations = fn.COUNT(AiGeneration.id)
    rows = (AiGeneration
            .select(AiGeneration.prompt, AiGeneration.version, generations.alias("generations"),
                    fn.SUM(AiGeneration.cache_hits).alias("cache_hits"),
                    fn.SUM(AiGeneration.cost_micros).alias("cost_micros"))
            .where(AiGeneration.team == team, AiGeneration.created_at >= costs.month_start())
            .group_by(AiGeneration.prompt, AiGeneration.version)
            .order_by(generations.desc(), AiGeneration.prompt, AiGeneration.version)
            .dicts())
    return [PromptUse(row["prompt"], row["version"], row["generations"], row["cache_hits"] or 0,
                      (row["cost_micros"] or 0) / 1_000_000) for row in rows]


def for_team(team):
    return TeamUsage(status=generate.status(team), spent_usd=costs.spent_this_month(team),
                     budget_usd=costs.budget_usd(team), months=costs.month_costs(team, MONTHS_SHOWN),
                     prompts=prompts_this_month(team))
