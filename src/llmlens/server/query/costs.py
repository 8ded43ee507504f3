"""Spend by model, app, department, user or service: totals, breakdown, series, unpriced calls."""

from __future__ import annotations

import asyncio
from typing import Any

from llmlens.server.query.call_context import CALLS
from llmlens.server.query.llm_filter import LlmFilter
from llmlens.server.query.overview import MODEL_EXPR
from llmlens.server.query.search import Store

DIMENSIONS = {
    "model": MODEL_EXPR,
    "app": "toString(App)",
    "department": "toString(Department)",
    "user": "UserId",
    "service": "toString(ServiceName)",
}
# Keys a call may inherit from its trace: grouped over CALLS (query/call_context.py), else llm_calls.
_INHERITED = {"app", "department", "user"}
SERIES_KEYS = 8  # the costliest keys get their own line; the rest are summed as "other"

_SUMS = """count() AS requests, countIf(NOT Priced) AS unpriced_requests,
       sum(InputTokens) AS input_tokens, sum(OutputTokens) AS output_tokens, sum(CostUsd) AS cost_usd,
       sumIf(InputTokens + OutputTokens, Priced) AS priced_tokens"""

TOTALS_SQL = f"SELECT {_SUMS} FROM llm_calls WHERE {{where}}"

BREAKDOWN_SQL = f"""
SELECT {{key}} AS key, {_SUMS}
FROM {{calls}} WHERE {{where}}
GROUP BY key ORDER BY cost_usd DESC, requests DESC, key LIMIT 200"""

SERIES_SQL = """
SELECT formatDateTime(toStartOfInterval(toDateTime(Timestamp), toIntervalSecond({step:UInt32})),
                      '%Y-%m-%dT%H:%i:%SZ') AS bucket,
       {key} AS key, sum(CostUsd) AS cost_usd, count() AS requests
FROM {calls} WHERE {where}
GROUP BY bucket, key ORDER BY bucket"""

UNPRICED_SQL = f"""
SELECT {MODEL_EXPR} AS model, toString(Provider) AS provider, count() AS requests,
       sum(InputTokens) AS input_tokens, sum(OutputTokens) AS output_tokens
FROM llm_calls WHERE {{where}} AND NOT Priced
GROUP BY model, provider ORDER BY requests DESC LIMIT 50"""


async def costs(store: Store, flt: LlmFilter, group_by: str, step_seconds: int) -> dict[str, Any]:
    key = DIMENSIONS[group_by]
    where, params = flt.where(), flt.params()
    calls = CALLS if group_by in _INHERITED else "llm_calls"

    async def run(sql: str, extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        sql = sql.replace("{key}", key).replace("{calls}", calls).replace("{where}", where)
        return await store.fetch(sql, {**params, **(extra or {})})

    totals, breakdown, series, unpriced = await asyncio.gather(
        run(TOTALS_SQL), run(BREAKDOWN_SQL), run(SERIES_SQL, {"step": step_seconds}), run(UNPRICED_SQL))
    total = _sums(totals[0] if totals else {})
    rows = [{"key": r["key"], **_sums(r)} for r in breakdown]
    for row in rows:
        row["share"] = row["cost_usd"] / total["cost_usd"] if total["cost_usd"] else 0.0
    return {
        "group_by": group_by,
        "step_seconds": step_seconds,
        "totals": total,
        "breakdown": rows,
        "series": _series(series, [r["key"] for r in rows[:SERIES_KEYS]], flt.window.buckets(step_seconds)),
        "unpriced": [{"model": r["model"], "provider": r["provider"], "requests": int(r["requests"]),
                      "input_tokens": int(r["input_tokens"]), "output_tokens": int(r["output_tokens"])}
                     for r in unpriced],
    }


def _sums(row: dict[str, Any]) -> dict[str, Any]:
    requests = int(row.get("requests") or 0)
    unpriced = int(row.get("unpriced_requests") or 0)
    cost = float(row.get("cost_usd") or 0.0)
    priced_tokens = int(row.get("priced_tokens") or 0)
    return {
        "requests": requests,
        "priced_requests": requests - unpriced,
        "unpriced_requests": unpriced,
        "input_tokens": int(row.get("input_tokens") or 0),
        "output_tokens": int(row.get("output_tokens") or 0),
        "cost_usd": cost,
        # Per 1,000 tokens of priced calls only: unpriced calls would dilute the rate.
        "cost_per_1k_tokens": cost / priced_tokens * 1000 if priced_tokens else None,
    }


def _series(rows: list[dict[str, Any]], top_keys: list[str], window_buckets: list[str]) -> dict[str, Any]:
    buckets = sorted({*window_buckets, *(r["bucket"] for r in rows)})
    index = {b: i for i, b in enumerate(buckets)}
    keys = [*top_keys, "other"]
    values = {k: [0.0] * len(buckets) for k in keys}
    for r in rows:
        key = r["key"] if r["key"] in values else "other"
        values[key][index[r["bucket"]]] += float(r["cost_usd"])
    if not any(values["other"]):
        keys.pop()
        del values["other"]
    return {"buckets": buckets, "keys": keys, "values": values}
