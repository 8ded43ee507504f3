"""Each rule's signal as one grouped SQL query over the store, and its rows as measurements.

One query per rule and evaluation, whatever the signal: windowed signals group by the rule's
group_by keys; budgets add the period's bounds; the forecast and the anomaly group by hour or
window bucket as well and finish in Python (forecast.py, anomaly.py). Only names from the
catalogue and numbers reach SQL text; every value a user wrote is a query parameter.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from llmlens.semconv import MODEL_OPERATIONS
from llmlens.server.alerts.anomaly import anomaly_score, baseline_buckets
from llmlens.server.alerts.catalogue import KEYS, SignalInfo, Source
from llmlens.server.alerts.forecast import PROFILE_LOOKBACK_DAYS, forecast_spend
from llmlens.server.alerts.periods import period_bounds
from llmlens.server.alerts.rules import Rule
from llmlens.server.query import call_context
from llmlens.server.query.window import sql_time
from llmlens.server.store import Store

MODEL_CALLS = "Operation IN (" + ", ".join(f"'{op}'" for op in MODEL_OPERATIONS) + ")"
_STREAMED = "Streaming AND TtftMs IS NOT NULL"
_TTFT = "TtftMs IS NOT NULL"

# signal -> (value expression, sample-count expression). {w} is the window in seconds.
_EXPRESSIONS: dict[str, tuple[str, str]] = {
    "request_rate": ("count() / {w:Float64}", "count()"),
    "error_rate": ("countIf(IsError) / count()", "count()"),
    "error_count": ("countIf(IsError{error_type})", "count()"),
    "latency_p50": ("quantile(0.5)(Duration / 1e9)", "count()"),
    "latency_p95": ("quantile(0.95)(Duration / 1e9)", "count()"),
    "latency_p99": ("quantile(0.99)(Duration / 1e9)", "count()"),
    "ttft_p50": (f"quantileIf(0.5)(assumeNotNull(TtftMs) / 1e3, {_TTFT})", f"countIf({_TTFT})"),
    "ttft_p95": (f"quantileIf(0.95)(assumeNotNull(TtftMs) / 1e3, {_TTFT})", f"countIf({_TTFT})"),
    "output_tokens_per_s": (f"sumIf(OutputTokens, {_STREAMED}) / "
                            f"sumIf(Duration / 1e9 - assumeNotNull(TtftMs) / 1e3, {_STREAMED})",
                            f"countIf({_STREAMED})"),
    "tokens": ("sum(InputTokens + OutputTokens)", "count()"),
    "cost": ("sum(CostUsd)", "count()"),
    "unpriced_requests": ("countIf(NOT Priced)", "count()"),
    "quality_score": ("avg(Value)", "count()"),
    "span_error_rate": ("countIf(StatusCode = 'Error') / count()", "count()"),
    "span_latency_p95": ("quantile(0.95)(Duration / 1e9)", "count()"),
}
# Signals that count or sum: a window without rows is a zero, not a missing value.
ADDITIVE = frozenset({"request_rate", "error_count", "tokens", "cost", "unpriced_requests"})


@dataclass(frozen=True)
class Measurement:
    """One group's value of a rule's signal at one evaluation."""

    labels: dict[str, str]  # the group_by keys' values
    value: float
    samples: int
    detail: dict[str, Any]  # what the value came from (spend so far, baseline kind, ...), for the API


@dataclass(frozen=True)
class Query:
    sql: str
    params: dict[str, Any]
    finish: Callable[[list[dict[str, Any]]], list[Measurement]]


async def measure(store: Store, rule: Rule, now: datetime, tz: ZoneInfo, timeout_s: float) -> list[Measurement]:
    query = build_query(rule, now, tz, timeout_s)
    return query.finish(await store.fetch(query.sql, query.params))


def build_query(rule: Rule, now: datetime, tz: ZoneInfo, timeout_s: float = 30.0) -> Query:
    if rule.signal in ("budget", "budget_burn_rate"):
        query = _budget(rule, now, tz)
    elif rule.signal == "spend_forecast":
        query = _forecast(rule, now, tz)
    elif rule.signal == "anomaly":
        query = _anomaly(rule, now)
    else:
        query = _windowed(rule, now)
    # The store's own limit is query_timeout_s; a rule's query also stops at the evaluator's.
    limit = max(1, int(timeout_s))
    return Query(f"{query.sql}\nSETTINGS max_execution_time = {limit}", query.params, query.finish)


# --- the parts of every query --------------------------------------------------------------

def _where(rule: Rule, start: str, params: dict[str, Any]) -> str:
    """Rows of the rule's table from `start` (a parameter name) to now, passing its filters."""
    info = rule.measured
    parts = [f"Timestamp > {{{start}:DateTime64(9)}}", "Timestamp <= {now:DateTime64(9)}"]
    if info.source is Source.LLM and "operation" not in rule.filters and "operation" not in rule.group_by:
        parts.append(MODEL_CALLS)  # "requests" are model calls; tool and retrieval steps are not
    keys = KEYS[info.source]
    for i, (key, value) in enumerate(sorted(rule.filters.items())):
        if key == "model":
            parts.append(f"(RequestModel = {{f{i}:String}} OR ResponseModel = {{f{i}:String}})")
        elif key == "user" and info.source is Source.LLM:  # the call's user, else its trace's
            parts.append(call_context.equals("UserId", f"f{i}", start, "now"))
        else:
            parts.append(f"{keys[key]} = {{f{i}:String}}")
        params[f"f{i}"] = value
    if info.name == "quality_score" and rule.score:
        parts.append("Name = {score:String}")
        params["score"] = rule.score
    return " AND ".join(parts)


def _value(info: SignalInfo, rule: Rule, params: dict[str, Any]) -> tuple[str, str]:
    value, samples = _EXPRESSIONS[info.name]
    if info.name == "error_count":
        value = value.replace("{error_type}", " AND ErrorType = {error_type:String}" if rule.error_type else "")
        if rule.error_type:
            params["error_type"] = rule.error_type
    return value, samples


def _table(rule: Rule) -> str:
    """The rule's table; LLM calls grouped per user with each call's user completed from its trace
    (query/call_context.py)."""
    if rule.measured.source is Source.LLM and "user" in rule.group_by:
        return call_context.calls("start", "now")
    return rule.measured.source.value


def _keys(rule: Rule) -> list[str]:
    keys = KEYS[rule.measured.source]
    return [f"toString({keys[k]}) AS `g_{k}`" for k in rule.group_by]


def _labels(rule: Rule, row: dict[str, Any]) -> dict[str, str]:
    return {k: str(row[f"g_{k}"]) for k in rule.group_by}


def _select(keys: list[str], extra: list[str]) -> str:
    return ", ".join([*keys, *extra])


def _group(keys: list[str], extra: tuple[str, ...] = ()) -> str:
    names = [k.rsplit(" AS ", 1)[1] for k in keys] + list(extra)
    return f"GROUP BY {', '.join(names)}" if names else ""


def _base_params(rule: Rule, now: datetime, start: datetime) -> dict[str, Any]:
    return {"now": sql_time(now), "start": sql_time(start), "w": float(rule.window_s or 1)}


# --- windowed signals ----------------------------------------------------------------------

def _windowed(rule: Rule, now: datetime) -> Query:
    params = _base_params(rule, now, now - timedelta(seconds=rule.window_s))
    value, samples = _value(rule.info, rule, params)
    keys = _keys(rule)
    sql = (f"SELECT {_select(keys, [f'{value} AS value', f'{samples} AS samples'])}\n"
           f"FROM {_table(rule)}\n"
           f"WHERE {_where(rule, 'start', params)}\n{_group(keys)}\n"
           f"HAVING samples >= {max(1, rule.min_samples)}")

    def finish(rows: list[dict[str, Any]]) -> list[Measurement]:
        out = []
        for row in rows:
            number = _number(row["value"])
            if number is not None:
                out.append(Measurement(_labels(rule, row), number, int(row["samples"]), {}))
        return out

    return Query(sql, params, finish)


# --- budgets -------------------------------------------------------------------------------

def _budget(rule: Rule, now: datetime, tz: ZoneInfo) -> Query:
    assert rule.period is not None and rule.amount is not None  # checked by rules.py
    period_start, period_end = period_bounds(rule.period, now, tz)
    burn = rule.signal == "budget_burn_rate"
    recent_start = now - timedelta(seconds=rule.window_s) if burn else period_start
    params = _base_params(rule, now, min(period_start, recent_start))
    params["period_start"] = sql_time(period_start)
    params["recent_start"] = sql_time(recent_start)
    keys = _keys(rule)
    columns = _select(keys, ["sumIf(CostUsd, Timestamp >= {period_start:DateTime64(9)}) AS spent",
                             "sumIf(CostUsd, Timestamp > {recent_start:DateTime64(9)}) AS recent", "count() AS samples"])
    sql = (f"SELECT {columns}\nFROM {_table(rule)}\nWHERE {_where(rule, 'start', params)}\n{_group(keys)}\n"
           f"HAVING samples >= {max(1, rule.min_samples)}")
    hours_left = max(0.0, (period_end - now).total_seconds()) / 3600
    amount = rule.amount

    def finish(rows: list[dict[str, Any]]) -> list[Measurement]:
        out = []
        for row in rows:
            spent, recent = float(row["spent"]), float(row["recent"])
            detail = {"spent_usd": round(spent, 6), "amount_usd": amount, "period": rule.period.value,
                      "period_start": period_start.isoformat(), "period_end": period_end.isoformat()}
            total = spent
            if burn:
                rate = recent / rule.window_s * 3600
                total = spent + rate * hours_left
                detail.update(spend_rate_usd_per_hour=round(rate, 6), projected_usd=round(total, 6))
            out.append(Measurement(_labels(rule, row), total / amount, int(row["samples"]), detail))
        return out

    return Query(sql, params, finish)


def _forecast(rule: Rule, now: datetime, tz: ZoneInfo) -> Query:
    assert rule.period is not None
    period_start, period_end = period_bounds(rule.period, now, tz)
    lookback = max(timedelta(days=PROFILE_LOOKBACK_DAYS), now - period_start)
    params = _base_params(rule, now, now - lookback)
    params["period_start"] = sql_time(period_start)
    keys = _keys(rule)
    hours_ago = "toUInt32(intDiv(dateDiff('second', Timestamp, {now:DateTime64(9)}), 3600)) AS hours_ago"
    columns = _select(keys, [hours_ago, "sum(CostUsd) AS cost",
                             "sumIf(CostUsd, Timestamp >= {period_start:DateTime64(9)}) AS spent", "count() AS samples"])
    sql = (f"SELECT {columns}\nFROM {_table(rule)}\nWHERE {_where(rule, 'start', params)}\n"
           f"{_group(keys, ('hours_ago',))}")
    hours_left = max(0.0, (period_end - now).total_seconds()) / 3600

    def finish(rows: list[dict[str, Any]]) -> list[Measurement]:
        groups: dict[tuple[str, ...], dict[str, Any]] = defaultdict(
            lambda: {"hourly": {}, "spent": 0.0, "samples": 0, "oldest": 0})
        for row in rows:
            labels = _labels(rule, row)
            g = groups[tuple(labels.values())]
            g["labels"] = labels
            k = int(row["hours_ago"])
            g["hourly"][k] = g["hourly"].get(k, 0.0) + float(row["cost"])
            g["spent"] += float(row["spent"])
            g["samples"] += int(row["samples"])
            g["oldest"] = max(g["oldest"], k + 1)
        out = []
        for g in groups.values():
            if g["samples"] < max(1, rule.min_samples):
                continue
            value = forecast_spend(g["spent"], g["hourly"], g["oldest"], hours_left, now.astimezone(tz))
            out.append(Measurement(g["labels"], value, g["samples"], {
                "spent_usd": round(g["spent"], 6), "period": rule.period.value,
                "period_end": period_end.isoformat(), "history_hours": g["oldest"]}))
        return out

    return Query(sql, params, finish)


# --- anomaly -------------------------------------------------------------------------------

def _anomaly(rule: Rule, now: datetime) -> Query:
    base = rule.measured
    seasonal, rolling = baseline_buckets(rule.window_s)
    buckets = sorted({0, *seasonal, *rolling})
    params = _base_params(rule, now, now - timedelta(seconds=rule.window_s * (buckets[-1] + 1)))
    value, samples = _value(base, rule, params)
    keys = _keys(rule)
    bucket = "toUInt32(intDiv(dateDiff('millisecond', Timestamp, {now:DateTime64(9)}), {wms:UInt64})) AS bucket"
    params["wms"] = rule.window_s * 1000
    sql = (f"SELECT {_select(keys, [bucket, f'{value} AS value', f'{samples} AS samples'])}\n"
           f"FROM {_table(rule)}\nWHERE {_where(rule, 'start', params)}\n{_group(keys, ('bucket',))}\n"
           f"HAVING bucket IN ({', '.join(map(str, buckets))})")
    additive = base.name in ADDITIVE

    def finish(rows: list[dict[str, Any]]) -> list[Measurement]:
        groups: dict[tuple[str, ...], tuple[dict[str, str], dict[int, float], dict[int, int]]] = {}
        for row in rows:
            labels = _labels(rule, row)
            _, values, counts = groups.setdefault(tuple(labels.values()), (labels, {}, {}))
            number = _number(row["value"])
            b = int(row["bucket"])
            counts[b] = int(row["samples"])
            if number is not None and (b != 0 or counts[b] >= rule.min_samples):
                values[b] = number
        out = []
        for labels, values, counts in groups.values():
            if additive:  # no rows in a window after the group's first one: nothing was counted
                oldest = max(values)
                values = {b: values.get(b, 0.0) for b in buckets if b <= oldest}
            scored = anomaly_score(values, rule.window_s)
            if scored is not None:
                out.append(Measurement(labels, scored[0], counts.get(0, 0),
                                       {"current": values[0], "baseline": scored[1]}))
        return out

    return Query(sql, params, finish)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number or number in (float("inf"), float("-inf")) else number
