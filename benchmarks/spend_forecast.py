"""Error of the spend forecast (server/alerts/forecast.py) on synthetic spend history, against a
straight line (the last six hours' rate to the period's end).

Two kinds of history, 35 days each, hour by hour:

- demo-like: what `llmlens demo`'s traffic makes, scenarios started at a steady rate (Poisson
  arrivals, 0.5 a second) whose calls cost what the mock LLM's token counts cost (a few
  scenario kinds of different price), with an occasional burst hour of retries;
- office hours: the same calls, but the rate follows a working day (busy 9-18 on weekdays, a
  tenth of that at night and at weekends), as a company's internal assistant would.

For every day after the first week, at each forecast hour (3:00, 6:00, ..., 21:00) the forecast of
the day's total is compared with the actual total; printed: the median and 90th percentile of
the absolute percentage error, per forecast hour and overall. Deterministic (seeded).

    python benchmarks/spend_forecast.py [--days 35] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from llmlens.server.alerts.forecast import forecast_spend, linear_forecast  # noqa: E402

RATE_PER_S = 0.5
SCENARIO_COSTS = ((0.55, 0.0009), (0.25, 0.0021), (0.15, 0.0046), (0.05, 0.0120))  # (share, USD) per scenario
FORECAST_HOURS = (3, 6, 9, 12, 15, 18, 21)
MONDAY = datetime(2026, 11, 2)  # day 0 of the history


def poisson(rng: random.Random, mean: float) -> int:
    if mean > 50:  # normal approximation
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def hour_cost(rng: random.Random, scenarios: int) -> float:
    shares = [s for s, _ in SCENARIO_COSTS]
    picks = rng.choices(range(len(SCENARIO_COSTS)), weights=shares, k=scenarios)
    return sum(SCENARIO_COSTS[i][1] * rng.uniform(0.8, 1.2) for i in picks)


def history(kind: str, days: int, rng: random.Random) -> list[float]:
    """Spend of each hour, oldest first (hour 0 is midnight of day 0, a Monday)."""
    out = []
    for h in range(days * 24):
        day, hour = divmod(h, 24)
        factor = 1.0
        if kind == "office":
            working = day % 7 < 5 and 9 <= hour < 18
            factor = 1.0 if working else 0.1
        spend = hour_cost(rng, poisson(rng, RATE_PER_S * 3600 * factor))
        if rng.random() < 0.02:  # a burst hour: an incident's retries double it
            spend *= 2.0
        out.append(spend)
    return out


def errors(series: list[float], days: int) -> dict[int, tuple[list[float], list[float]]]:
    """Per forecast hour: absolute percentage errors of the forecast and of the straight line."""
    found: dict[int, tuple[list[float], list[float]]] = {h: ([], []) for h in FORECAST_HOURS}
    for day in range(7, days):
        start = day * 24
        actual = sum(series[start:start + 24])
        for at in FORECAST_HOURS:
            now = start + at  # index of the first hour not yet seen
            hourly = {k: series[now - 1 - k] for k in range(min(now, 24 * 29))}
            spent = sum(series[start:now])
            ours = forecast_spend(spent, hourly, now, 24 - at, MONDAY + timedelta(hours=now))
            line = linear_forecast(spent, hourly, 24 - at)
            found[at][0].append(abs(ours - actual) / actual * 100)
            found[at][1].append(abs(line - actual) / actual * 100)
    return found


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for kind in ("demo", "office"):
        rng = random.Random(args.seed)
        found = errors(history(kind, args.days, rng), args.days)
        print(f"\n{kind}-like history, {args.days - 7} days forecast: absolute % error of the day's total")
        print(f"{'at':>6} {'forecast median':>16} {'p90':>7} {'straight line median':>21} {'p90':>7}")
        for at, (ours, line) in found.items():
            print(f"{at:>4}:00 {statistics.median(ours):15.1f}% {p90(ours):6.1f}% "
                  f"{statistics.median(line):20.1f}% {p90(line):6.1f}%")
        ours_all = [e for o, _ in found.values() for e in o]
        line_all = [e for _, li in found.values() for e in li]
        print(f"{'all':>6} {statistics.median(ours_all):15.1f}% {p90(ours_all):6.1f}% "
              f"{statistics.median(line_all):20.1f}% {p90(line_all):6.1f}%")


if __name__ == "__main__":
    main()
