"""The budget panel's figures: for each budget the rules define, the spend so far in its calendar
period, the burn rate, the spend that rate leads to by the period's end, and the forecast.

A budget is what `budget`, `budget_burn_rate` and `spend_forecast` rules watch: a period, an
amount (none for a forecast alone), filters and group_by. Rules watching the same one (the
default DailyBudget and DailyBudgetBurnRate) make one budget. The figures come from the same
queries the rules run (signals.py): the burn rate over the burn-rate rule's window (1 hour when
no rule gives one), the forecast by forecast.py's method.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from llmlens.server.alerts.catalogue import Period
from llmlens.server.alerts.durations import format_duration
from llmlens.server.alerts.periods import period_bounds
from llmlens.server.alerts.rules import Rule
from llmlens.server.alerts.signals import measure
from llmlens.server.store import Store

BUDGET_SIGNALS = ("budget", "budget_burn_rate", "spend_forecast")
DEFAULT_BURN_WINDOW_S = 3600


@dataclass
class Budget:
    period: Period
    amount_usd: float | None
    filters: dict[str, str]
    group_by: tuple[str, ...]
    rules: list[str] = field(default_factory=list)
    burn_window_s: int = DEFAULT_BURN_WINDOW_S
    base: Rule | None = None  # a rule of this budget, the others' queries are derived from

    @property
    def key(self) -> tuple[Any, ...]:
        return self.period, self.amount_usd, tuple(sorted(self.filters.items())), self.group_by


def budgets_of(rules: Sequence[Rule]) -> list[Budget]:
    """The distinct budgets the rules watch, in the rules' order."""
    found: dict[tuple[Any, ...], Budget] = {}
    for rule in rules:
        if rule.signal not in BUDGET_SIGNALS or rule.period is None:
            continue
        candidate = Budget(rule.period, rule.amount, dict(rule.filters), rule.group_by, base=rule)
        budget = found.setdefault(candidate.key, candidate)
        budget.rules.append(rule.name)
        if rule.signal == "budget_burn_rate":
            budget.burn_window_s = rule.window_s
    return list(found.values())


async def budget_figures(store: Store, budget: Budget, now: datetime, tz: ZoneInfo,
                         timeout_s: float) -> dict[str, Any]:
    """One budget's figures now, per group (one group, all zero, for an ungrouped budget without spend)."""
    assert budget.base is not None
    start, end = period_bounds(budget.period, now, tz)
    common = dict(op=">=", threshold=0.0, for_s=0, min_samples=0, amount=budget.amount_usd or 1.0, of=None)
    burn_rule = replace(budget.base, signal="budget_burn_rate", window_s=budget.burn_window_s, **common)
    forecast_rule = replace(budget.base, signal="spend_forecast", window_s=0, **common)
    burn = await measure(store, burn_rule, now, tz, timeout_s)
    forecast = {tuple(m.labels.items()): m for m in await measure(store, forecast_rule, now, tz, timeout_s)}
    groups = []
    for m in burn:
        spent = float(m.detail["spent_usd"])
        projected = forecast.get(tuple(m.labels.items()))
        groups.append(_group(budget, m.labels, spent, float(m.detail["spend_rate_usd_per_hour"]),
                             float(m.detail["projected_usd"]), projected.value if projected else spent))
    if not groups and not budget.group_by:
        groups.append(_group(budget, {}, 0.0, 0.0, 0.0, 0.0))
    groups.sort(key=lambda g: -g["spent_usd"])
    return {"rules": budget.rules, "period": budget.period.value, "amount_usd": budget.amount_usd,
            "filters": budget.filters, "group_by": list(budget.group_by),
            "period_start": start.isoformat().replace("+00:00", "Z"),
            "period_end": end.isoformat().replace("+00:00", "Z"),
            "burn_window": format_duration(budget.burn_window_s), "groups": groups}


def _group(budget: Budget, labels: dict[str, str], spent: float, rate: float, at_rate: float,
           forecast: float) -> dict[str, Any]:
    amount = budget.amount_usd
    return {"labels": labels, "spent_usd": round(spent, 6), "burn_rate_usd_per_hour": round(rate, 6),
            "projected_at_burn_rate_usd": round(at_rate, 6), "forecast_usd": round(forecast, 6),
            "spent_fraction": round(spent / amount, 6) if amount else None,
            "forecast_fraction": round(forecast / amount, 6) if amount else None}
