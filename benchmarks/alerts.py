"""Alert evaluation time on a big store: the default rule set (and a few heavier rules) evaluated
on N spans of LLM traces over the last 24 h (benchmarks/query.py's store), in this process, as
the server's evaluator runs them: one grouped query per rule, then state bookkeeping.

    python benchmarks/alerts.py [--spans 1000000] [--repeat 9] [--keep DIR]

`--keep DIR` seeds into (or reuses) a folder, the same as `benchmarks/query.py --keep DIR`.
Prints the median milliseconds per rule, per budget of the budget panel (GET /api/v1/budgets), and
of one whole evaluation round.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.query import seed  # noqa: E402

EXTRA_RULES = """
rules:
  - {name: SpanErrors, signal: span_error_rate, window: 5m, group_by: [service, span_name], op: ">", threshold: 0.1}
  - {name: UserBudget, signal: budget, period: month, amount: 50, group_by: [user]}
  - {name: SpendForecast, signal: spend_forecast, period: day, op: ">", threshold: 100, group_by: [model]}
  - {name: LatencyAnomaly, signal: anomaly, of: latency_p95, window: 5m, group_by: [model]}
"""


async def run(data_dir: Path, repeat: int) -> None:
    from llmlens.server.alerts.budgets import budget_figures, budgets_of
    from llmlens.server.alerts.evaluator import Evaluator
    from llmlens.server.alerts.notify import Notifier
    from llmlens.server.alerts.rules import default_rules, parse_rules
    from llmlens.server.alerts.signals import measure
    from llmlens.server.store import Store, open_backend

    store = Store(open_backend(data_dir=str(data_dir)))
    try:
        counts = await store.counts()
        print(f"store: {counts['spans']:,} spans")
        defaults = default_rules(100)
        extra = parse_rules(EXTRA_RULES, "benchmark")
        tz = ZoneInfo("UTC")
        print(f"\n{'rule':28} {'signal':34} median ms   groups")
        for rule in [*defaults, *extra]:
            samples, found = [], []
            for _ in range(repeat):
                started = time.perf_counter()
                found = await measure(store, rule, datetime.now(UTC), tz, 60)
                samples.append((time.perf_counter() - started) * 1000)
            what = f"{rule.signal}({rule.of})" if rule.of else rule.signal
            print(f"{rule.name:28} {what:34} {statistics.median(samples):9.1f}   {len(found)}")
        # The budget panel of the Alerts and Costs pages (GET /api/v1/budgets): two queries a budget.
        print(f"\n{'budget panel (/api/v1/budgets)':63} median ms   groups")
        for budget in budgets_of([*defaults, *extra]):
            samples, figures = [], {}
            for _ in range(repeat):
                started = time.perf_counter()
                figures = await budget_figures(store, budget, datetime.now(UTC), tz, 60)
                samples.append((time.perf_counter() - started) * 1000)
            name = f"{', '.join(budget.rules)} ({budget.period.value}, by {', '.join(budget.group_by) or 'nothing'})"
            print(f"{name:63} {statistics.median(samples):9.1f}   {len(figures['groups'])}")
        evaluator = Evaluator(store, defaults, Notifier([], []), interval_s=30, tz=tz,
                              external_url="http://localhost:4318", timeout_s=60)
        await evaluator.load()
        rounds = []
        for _ in range(repeat):
            await evaluator.evaluate()
            rounds.append(evaluator.last_duration_s * 1000)
        print(f"\none evaluation round of the {len(defaults)} default rules (queries, state, history): "
              f"median {statistics.median(rounds):.0f} ms, max {max(rounds):.0f} ms (interval 30 s)")
        await evaluator.stop()
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--keep", help="seed into (or reuse) this folder and keep it")
    args = parser.parse_args()
    data_dir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="llmlens-alerts-")) / "data"
    if not (data_dir.exists() and any(data_dir.iterdir())):
        started = time.perf_counter()
        seed(data_dir, args.spans)
        print(f"seeded {args.spans:,} spans in {time.perf_counter() - started:.0f} s")
    try:
        asyncio.run(run(data_dir, args.repeat))
    finally:
        if not args.keep:
            shutil.rmtree(data_dir.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
