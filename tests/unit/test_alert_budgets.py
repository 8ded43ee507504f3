"""The budget panel's figures (GET /api/v1/budgets) on a real embedded store holding known spend,
and the links of an alert to its traces and Overview."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from llmlens.server.alerts.budgets import budget_figures, budgets_of
from llmlens.server.alerts.explore import explore, trace_query
from llmlens.server.alerts.rules import default_rules, parse_rules
from llmlens.server.query.traceql import compile_query
from llmlens.server.store import Store, open_backend
from tests.alert_seed import llm_call, reference_now, write

UTC = ZoneInfo("UTC")
NOW = reference_now()  # a Wednesday, 12:00 UTC


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = Store(open_backend(data_dir=str(tmp_path_factory.mktemp("chdb") / "data")))
    yield s
    s.close()


def rules(text: str):
    return parse_rules("rules:\n" + text, "test")


def figures(store, budget, tz=UTC):
    return asyncio.run(budget_figures(store, budget, NOW, tz, 30))


def test_rules_on_one_budget_make_one_and_others_stay_apart():
    found = budgets_of(default_rules(100.0))
    assert [(b.period.value, b.amount_usd, b.rules, b.burn_window_s) for b in found] == [
        ("day", 100.0, ["DailyBudget", "DailyBudgetBurnRate"], 3600)]
    more = budgets_of(rules("""\
  - {name: A, signal: budget, period: month, amount: 500, group_by: [department]}
  - {name: B, signal: budget_burn_rate, period: month, amount: 500, window: 2h, group_by: [department]}
  - {name: C, signal: budget, period: month, amount: 500}
  - {name: F, signal: spend_forecast, period: week, op: '>', threshold: 10}
  - {name: E, signal: error_rate, window: 5m, op: '>', threshold: 0.1}
"""))
    assert [(b.rules, b.amount_usd, b.group_by, b.burn_window_s) for b in more] == [
        (["A", "B"], 500.0, ("department",), 7200), (["C"], 500.0, (), 3600), (["F"], None, (), 3600)]


def test_figures_have_known_answers(store):
    """$1 in each of the last 36 hours for app-a (12 today, before noon), $3 at 11:40 for app-b."""
    write(store, [llm_call(NOW - timedelta(minutes=30 + 60 * h), app="budget-a", cost=1.0, department="r&d")
                  for h in range(36)])
    write(store, [llm_call(NOW - timedelta(minutes=20), app="budget-b", cost=3.0, department="sales")])
    [budget] = budgets_of(rules("""\
  - {name: Daily, signal: budget, period: day, amount: 40, filters: {app: budget-a}}
  - {name: DailyBurn, signal: budget_burn_rate, period: day, amount: 40, window: 2h, filters: {app: budget-a}}
"""))
    got = figures(store, budget)
    assert got["rules"] == ["Daily", "DailyBurn"] and got["amount_usd"] == 40.0 and got["period"] == "day"
    assert got["period_start"] == NOW.replace(hour=0).isoformat().replace("+00:00", "Z")
    assert got["period_end"] == (NOW.replace(hour=0) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert got["burn_window"] == "2h"
    [group] = got["groups"]
    assert group["labels"] == {} and group["spent_usd"] == 12.0 and group["spent_fraction"] == 0.3
    assert group["burn_rate_usd_per_hour"] == 1.0  # $2 in the last 2 hours
    assert group["projected_at_burn_rate_usd"] == 24.0  # 12 + 12 hours x $1
    # Fewer than 24 hours of profile before today's last 6: the forecast's hour-of-day profile still
    # sees $1 every hour, so the rest of the day is 12 x $1.
    assert math.isclose(group["forecast_usd"], 24.0) and math.isclose(group["forecast_fraction"], 0.6)

    [by_department] = budgets_of(rules("""\
  - {name: Dept, signal: budget, period: week, amount: 100, group_by: [department], filters: {service: svc}}
"""))
    groups = {g["labels"]["department"]: g for g in figures(store, by_department)["groups"]}
    assert groups["r&d"]["spent_usd"] == 36.0  # Monday 00:00 is 60 hours back: all 36
    assert groups["sales"]["spent_usd"] == 3.0 and groups["sales"]["burn_rate_usd_per_hour"] == 3.0


def test_a_budget_without_spend_shows_zeros(store):
    [budget] = budgets_of(rules("  - {name: Empty, signal: budget, period: month, amount: 5, filters: {app: none}}\n"))
    [group] = figures(store, budget)["groups"]
    assert group == {"labels": {}, "spent_usd": 0.0, "burn_rate_usd_per_hour": 0.0, "projected_at_burn_rate_usd": 0.0,
                     "forecast_usd": 0.0, "spent_fraction": 0.0, "forecast_fraction": 0.0}
    [grouped] = budgets_of(rules("  - {name: G, signal: budget, period: day, amount: 5, filters: {app: none}, "
                                 "group_by: [user]}\n"))
    assert figures(store, grouped)["groups"] == []


def test_links_of_an_alert_are_valid_trace_queries_over_its_window():
    [errors, spans, budget, score] = rules("""\
  - {name: E, signal: error_count, error_type: 'Rate"Limit', window: 5m, op: '>', threshold: 0,
     filters: {app: support}, group_by: [model, department]}
  - {name: S, signal: span_latency_p95, window: 10m, op: '>', threshold: 1, group_by: [service, span_kind]}
  - {name: B, signal: budget, period: day, amount: 10, group_by: [user]}
  - {name: Q, signal: quality_score, window: 1h, op: '<', threshold: 0.5, group_by: [score]}
""")
    at = NOW.replace(hour=9, minute=7)
    got = explore(errors, {"model": "gpt-4o", "department": "cx"}, at, UTC)
    assert got == {"traces_query": '{ app = "support" && model = "gpt-4o" && department = "cx" && '
                                   'errorType = "Rate\\"Limit" && status = error }',
                   "overview_filters": {"app": "support", "department": "cx", "model": "gpt-4o"},
                   "start": f"{at.date().isoformat()}T09:02:00Z"}
    assert trace_query(spans, {"service": "retriever", "span_kind": "Server"}) == \
        '{ service = "retriever" && kind = server }'
    assert explore(budget, {"user": "ann"}, at, UTC)["start"] == f"{at.date().isoformat()}T00:00:00Z"
    tokyo_day = (at - timedelta(days=1)).strftime("%Y-%m-%dT15:00:00Z")  # 09:07 UTC is 18:07 in Tokyo
    assert explore(budget, {"user": "ann"}, at, ZoneInfo("Asia/Tokyo"))["start"] == tokyo_day
    assert trace_query(score, {"score": "helpful"}) == "{ }"
    assert trace_query(budget, {}) == '{ model =~ ".+" }'
    for rule, labels in ((errors, {"model": "gpt-4o", "department": "cx"}), (spans, {"span_kind": "Client"}),
                         (budget, {}), (score, {})):
        compile_query(trace_query(rule, labels))  # the Traces page's search takes each one
