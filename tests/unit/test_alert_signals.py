"""Each signal's SQL on a real embedded store seeded with known rows: windowed signals, budgets by
calendar period and time zone, burn rate, the spend forecast, and the anomaly score firing on an
injected spike but not on steady traffic. Every test writes rows of its own `app` and filters on it."""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from llmlens.server.alerts.rules import Rule, parse_rules
from llmlens.server.alerts.signals import Measurement, measure
from llmlens.server.normalise import build_cost_model
from llmlens.server.receive.workers import build_batch
from llmlens.server.store import Store, open_backend
from tests.alert_seed import llm_call, reference_now, score, write
from tests.integration.otlp_requests import make_span, trace_request

UTC = ZoneInfo("UTC")
NOW = reference_now()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = Store(open_backend(data_dir=str(tmp_path_factory.mktemp("chdb") / "data")))
    yield s
    s.close()


def rule(text: str) -> Rule:
    return parse_rules(f"rules:\n  - {text}\n", "test")[0]


def run(store: Store, text: str, now: datetime = NOW, tz: ZoneInfo = UTC) -> list[Measurement]:
    return asyncio.run(measure(store, rule(text), now, tz, 30))


def by(found: list[Measurement], key: str) -> dict[str, float]:
    return {m.labels[key]: round(m.value, 9) for m in found}


def app() -> str:
    return "app-" + uuid.uuid4().hex[:8]


def test_windowed_llm_signals_have_known_values(store):
    a = app()
    ago = lambda s: NOW - timedelta(seconds=s)  # noqa: E731
    calls = [llm_call(ago(10 + i), app=a, model="m1", error=i < 4, duration_s=1.0 + i, cost=0.5,
                      error_type="RateLimitError" if i < 3 else "", priced=i != 9) for i in range(10)]
    calls += [llm_call(ago(20 + i), app=a, model="m2", duration_s=0.5, cost=0.25, ttft_ms=200.0 + 100 * i)
              for i in range(5)]
    calls += [llm_call(ago(400), app=a, model="m1", error=True, cost=100.0)]  # outside a 5m window
    calls += [llm_call(ago(30), app=a, model="m1", error=True, operation="execute_tool")]  # not a model call
    write(store, calls)
    base = f"window: 5m, op: '>', threshold: 0, filters: {{app: {a}}}, group_by: [model]"
    assert by(run(store, f"{{name: A, signal: error_rate, {base}}}"), "model") == {"m1": 0.4, "m2": 0.0}
    assert by(run(store, f"{{name: A, signal: error_count, {base}}}"), "model") == {"m1": 4, "m2": 0}
    assert by(run(store, f"{{name: A, signal: error_count, error_type: RateLimitError, {base}}}"),
              "model") == {"m1": 3, "m2": 0}
    assert by(run(store, f"{{name: A, signal: request_rate, {base}}}"), "model") == {"m1": round(10 / 300, 9), "m2": round(5 / 300, 9)}
    assert by(run(store, f"{{name: A, signal: cost, {base}}}"), "model") == {"m1": 5.0, "m2": 1.25}
    assert by(run(store, f"{{name: A, signal: tokens, {base}}}"), "model") == {"m1": 1200, "m2": 600}
    assert by(run(store, f"{{name: A, signal: unpriced_requests, {base}}}"), "model") == {"m1": 1, "m2": 0}
    p95 = by(run(store, f"{{name: A, signal: latency_p95, {base}}}"), "model")
    assert 9.0 <= p95["m1"] <= 10.0 and p95["m2"] == 0.5
    ttft = by(run(store, f"{{name: A, signal: ttft_p50, {base}}}"), "model")
    assert ttft == {"m2": 0.4}  # m1 has no streamed calls: no value, not zero
    # min_samples: a group with fewer calls has no value
    assert by(run(store, f"{{name: A, signal: error_rate, min_samples: 6, {base}}}"), "model") == {"m1": 0.4}
    # the operation filter opts into other operations
    ops = run(store, f"{{name: A, signal: error_count, window: 5m, op: '>', threshold: 0, "
                     f"filters: {{app: {a}, operation: execute_tool}}}}")
    assert [(m.value, m.samples) for m in ops] == [(1, 1)]


def test_span_and_score_signals(store):
    a = app()
    t0 = int((NOW - timedelta(seconds=30)).timestamp() * 1e9)
    spans = [make_span("GET /x", start_ns=t0 + i * 1000, duration_ms=100.0 * (i + 1), error=i < 2) for i in range(8)]
    batch = build_batch("traces", trace_request(spans, service=a).SerializeToString(), "protobuf",
                        build_cost_model(window=None))
    store.write_sync(batch, timeout=60)
    base = f"window: 5m, op: '>', threshold: 0, filters: {{service: {a}}}, group_by: [span_name]"
    assert by(run(store, f"{{name: S, signal: span_error_rate, {base}}}"), "span_name") == {"GET /x": 0.25}
    p95 = by(run(store, f"{{name: S, signal: span_latency_p95, {base}}}"), "span_name")["GET /x"]
    assert 0.7 <= p95 <= 0.8
    write(store, scores=[score(NOW - timedelta(seconds=5 + i), app=a, name=n, value=v)
                         for i, (n, v) in enumerate([("helpful", 1.0), ("helpful", 0.5), ("toxicity", 0.1)])])
    found = run(store, f"{{name: Q, signal: quality_score, window: 5m, op: '<', threshold: 1, "
                       f"filters: {{app: {a}}}, group_by: [score]}}")
    assert by(found, "score") == {"helpful": 0.75, "toxicity": 0.1}


def test_budgets_by_calendar_period_and_time_zone(store):
    """NOW is a Wednesday 12:00 UTC. Spend: $10 at 11:00, $5 at 01:00, $7 the evening before,
    $20 on Monday, $100 the Monday before."""
    a = app()
    spend = [(timedelta(hours=1), 10.0), (timedelta(hours=11), 5.0), (timedelta(hours=13), 7.0),
             (timedelta(days=2), 20.0), (timedelta(days=9), 100.0)]
    write(store, [llm_call(NOW - back, app=a, cost=usd, department="research") for back, usd in spend])
    budget = f"amount: 100, filters: {{app: {a}}}"
    assert by(run(store, f"{{name: B, signal: budget, period: day, {budget}, group_by: [department]}}"),
              "department") == {"research": 0.15}
    # New York's day began at 05:00 UTC (04:00 in summer): 01:00 UTC belongs to the day before.
    new_york = run(store, f"{{name: B, signal: budget, period: day, {budget}}}", tz=ZoneInfo("America/New_York"))
    assert [round(m.value, 9) for m in new_york] == [0.10]
    week = run(store, f"{{name: B, signal: budget, period: week, {budget}}}")
    assert [round(m.value, 9) for m in week] == [0.42] and week[0].detail["spent_usd"] == 42.0
    month_start = NOW.replace(day=1, hour=0)
    in_month = sum(usd for back, usd in spend if NOW - back >= month_start)
    month = run(store, f"{{name: B, signal: budget, period: month, {budget}}}")
    assert [round(m.value, 9) for m in month] == [round(in_month / 100, 9)]
    # Burn rate: $10 in the last 2 h is $5/h; 12 h left today: 15 + 60 = $75 of $100.
    burn = run(store, f"{{name: B, signal: budget_burn_rate, period: day, window: 2h, {budget}}}")
    assert [round(m.value, 9) for m in burn] == [0.75]
    assert burn[0].detail["spend_rate_usd_per_hour"] == 5.0 and burn[0].detail["projected_usd"] == 75.0
    # A budget per user is one rule grouped by user.
    b = app()
    write(store, [llm_call(NOW - timedelta(minutes=m), app=b, cost=c, user=u)
                  for m, c, u in [(5, 30.0, "ann"), (6, 80.0, "bob"), (7, 30.0, "ann")]])
    users = run(store, f"{{name: B, signal: budget, period: day, amount: 50, filters: {{app: {b}}}, "
                       f"group_by: [user], threshold: 1}}")
    assert by(users, "user") == {"ann": 1.2, "bob": 1.6}


def test_spend_forecast_on_steady_history_is_exact(store):
    """$1 every hour for three days: at noon, $12 spent today and $12 to come."""
    a = app()
    write(store, [llm_call(NOW - timedelta(minutes=30 + 60 * h), app=a, cost=1.0) for h in range(72)])
    found = run(store, f"{{name: F, signal: spend_forecast, period: day, op: '>', threshold: 20, "
                       f"filters: {{app: {a}}}}}")
    assert len(found) == 1 and math.isclose(found[0].value, 24.0)
    assert found[0].detail["spent_usd"] == 12.0 and found[0].detail["history_hours"] == 72
    # Less than a day of history: the last hours' rate to the end of the period.
    b = app()
    write(store, [llm_call(NOW - timedelta(minutes=30 + 60 * h), app=b, cost=2.0) for h in range(3)])
    short = run(store, f"{{name: F, signal: spend_forecast, period: day, op: '>', threshold: 20, "
                       f"filters: {{app: {b}}}}}")
    assert math.isclose(short[0].value, 6.0 + 2.0 * 12)


def test_anomaly_fires_on_a_spike_and_not_on_steady_traffic(store):
    rng = random.Random(7)
    steady, spiky = app(), app()
    calls = []
    for h in range(1, 24 * 3):  # three days of hourly traffic costing about $1 an hour
        for tag in (steady, spiky):
            calls += [llm_call(NOW - timedelta(hours=h, minutes=rng.uniform(1, 59)), app=tag,
                               cost=rng.uniform(0.18, 0.22)) for _ in range(5)]
    calls += [llm_call(NOW - timedelta(minutes=rng.uniform(1, 59)), app=steady, cost=rng.uniform(0.18, 0.22))
              for _ in range(5)]
    calls += [llm_call(NOW - timedelta(minutes=rng.uniform(1, 59)), app=spiky, cost=1.0) for _ in range(20)]
    write(store, calls)
    quiet = run(store, f"{{name: A, signal: anomaly, of: cost, window: 1h, filters: {{app: {steady}}}}}")
    loud = run(store, f"{{name: A, signal: anomaly, of: cost, window: 1h, filters: {{app: {spiky}}}}}")
    assert len(quiet) == 1 and abs(quiet[0].value) < 5, quiet
    assert not rule("{name: A, signal: anomaly, of: cost, window: 1h}").holds(quiet[0].value)
    assert len(loud) == 1 and loud[0].value > 50 and loud[0].detail["current"] == pytest.approx(20.0)
    assert loud[0].detail["baseline"] == "previous windows"  # 3 days: bucket 72 is just out of reach
    # A drop: the request rate falling to nothing is a negative score.
    gone = run(store, f"{{name: A, signal: anomaly, of: request_rate, window: 1h, op: '<', threshold: -5, "
                      f"filters: {{app: {steady}}}}}", now=NOW + timedelta(hours=2))
    assert gone and gone[0].value < -5
    # Too little history: no value at all (nothing to compare with), never a guess.
    fresh = app()
    write(store, [llm_call(NOW - timedelta(minutes=5), app=fresh, cost=1.0)])
    assert run(store, f"{{name: A, signal: anomaly, of: cost, window: 1h, filters: {{app: {fresh}}}}}") == []
