"""The overview dashboard's data: LLM totals, time series and breakdowns over llm_calls.

"Requests" are model calls (as in /api/v1/llm/stats); the request rate is over the time the window
had calls (see _rate); output tokens per second is the decode speed of streamed calls: output
tokens over the time after the first token.
Every figure reads typed llm_calls columns (never attribute Maps), so 24 hours of a large store
stay interactive. The queries are independent and run concurrently.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from llmlens.server.query.llm_filter import MODEL_CALLS, LlmFilter
from llmlens.server.query.search import Store

# Upper-open bucket bounds (ms) of the request duration histogram.
HISTOGRAM_BOUNDS_MS = (0, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 20000, 60000)
MODEL_EXPR = "if(RequestModel != '', RequestModel, ResponseModel)"

_MEASURES = """
    count() AS requests,
    countIf(IsError) AS errors,
    quantiles(0.5, 0.95, 0.99)(Duration / 1e6) AS latency_ms,
    quantiles(0.5, 0.95)(TtftMs) AS ttft_ms,
    sum(InputTokens) AS input_tokens,
    sum(OutputTokens) AS output_tokens,
    sum(CostUsd) AS cost_usd,
    countIf(NOT Priced) AS unpriced_requests,
    sumIf(OutputTokens, Streaming AND TtftMs IS NOT NULL)
        / nullIf(sumIf(Duration / 1e9 - assumeNotNull(TtftMs) / 1e3, Streaming AND TtftMs IS NOT NULL), 0)
        AS output_tokens_per_s"""

# One scan gives the series and the totals: the () grouping set is the whole window (is_total = 1).
# Grouping by the DateTime and formatting only the groups keeps formatting off the per-row path.
SERIES_SQL = f"""
SELECT formatDateTime(b, '%Y-%m-%dT%H:%i:%SZ') AS bucket, grouping(b) AS is_total,
       toUnixTimestamp64Milli(min(Timestamp)) AS first_ms, toUnixTimestamp64Milli(max(Timestamp)) AS last_ms,{_MEASURES}
FROM llm_calls WHERE {{where}}
GROUP BY GROUPING SETS ((toStartOfInterval(toDateTime(Timestamp), toIntervalSecond({{step:UInt32}})) AS b), ())
ORDER BY b"""

MODELS_SQL = f"""
SELECT {MODEL_EXPR} AS model, count() AS requests, countIf(IsError) AS errors,
       sum(InputTokens) AS input_tokens, sum(OutputTokens) AS output_tokens, sum(CostUsd) AS cost_usd
FROM llm_calls WHERE {{where}}
GROUP BY model ORDER BY requests DESC, model LIMIT 100"""

HISTOGRAM_SQL = f"""
SELECT roundDown(Duration / 1e6, [{", ".join(str(b) for b in HISTOGRAM_BOUNDS_MS)}]) AS lower_ms, count() AS requests
FROM llm_calls WHERE {{where}}
GROUP BY lower_ms ORDER BY lower_ms"""

ERRORS_SQL = """
SELECT if(ErrorType != '', toString(ErrorType), 'unknown') AS error_type, count() AS requests,
       formatDateTime(max(Timestamp), '%Y-%m-%dT%H:%i:%S.%fZ') AS last_seen
FROM llm_calls WHERE {where} AND IsError
GROUP BY error_type ORDER BY requests DESC, error_type LIMIT 10"""

COST_BY_SQL = """
SELECT toString(App) AS app, toString(Department) AS department, count() AS requests,
       sum(InputTokens) AS input_tokens, sum(OutputTokens) AS output_tokens,
       sum(CostUsd) AS cost_usd, countIf(NOT Priced) AS unpriced_requests
FROM llm_calls WHERE {where}
GROUP BY app, department ORDER BY cost_usd DESC, requests DESC LIMIT 50"""

# Filter choices ignore the filters themselves (but count model calls only, like everything here),
# so another value can always be picked.
FACETS_SQL = f"""
SELECT groupUniqArrayIf(200)(toString(ServiceName), ServiceName != '') AS services,
       groupUniqArrayIf(200)(toString(App), App != '') AS apps,
       groupUniqArrayIf(200)(toString(Department), Department != '') AS departments,
       groupUniqArrayIf(200)(toString({MODEL_EXPR}), {MODEL_EXPR} != '') AS models
FROM llm_calls WHERE Timestamp >= {{start:DateTime64(9)}} AND Timestamp < {{end:DateTime64(9)}} AND {MODEL_CALLS}"""


async def overview(store: Store, flt: LlmFilter, step_seconds: int) -> dict[str, Any]:
    where, params = flt.where(), flt.params()

    async def run(sql: str, extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return await store.fetch(sql.replace("{where}", where), {**params, **(extra or {})})

    grouped, models, histogram, errors, cost_by, facets = await asyncio.gather(
        run(SERIES_SQL, {"step": step_seconds}), run(MODELS_SQL), run(HISTOGRAM_SQL),
        run(ERRORS_SQL), run(COST_BY_SQL), store.fetch(FACETS_SQL, flt.window.params()))
    series = [row for row in grouped if not int(row["is_total"])]
    total = _measures(next((row for row in grouped if int(row["is_total"])), {}))
    total["models"] = len(models)
    total["successes"] = total["requests"] - total["errors"]
    total.update(_rate(next((row for row in grouped if int(row["is_total"])), {}), total["requests"]))
    return {
        "window": {"start": _iso(flt.window.start), "end": _iso(flt.window.end), "step_seconds": step_seconds},
        "totals": total,
        "series": _filled(series, flt.window.buckets(step_seconds)),
        "models": _model_shares(models, total["requests"]),
        "duration_histogram": _histogram(histogram),
        "top_errors": [{"error_type": r["error_type"], "requests": int(r["requests"]),
                        "last_seen": r["last_seen"]} for r in errors],
        "cost_by": [_cost_row(r) for r in cost_by],
        "facets": {k: sorted(v) for k, v in (facets[0] if facets else {}).items()},
    }


def _measures(row: dict[str, Any]) -> dict[str, Any]:
    latency = row.get("latency_ms") or [None, None, None]
    ttft = row.get("ttft_ms") or [None, None]
    requests = int(row.get("requests") or 0)
    errors = int(row.get("errors") or 0)
    return {
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests if requests else None,  # no requests: no rate, not 0%
        "latency_p50_ms": _num(latency[0]), "latency_p95_ms": _num(latency[1]), "latency_p99_ms": _num(latency[2]),
        "ttft_p50_ms": _num(ttft[0]), "ttft_p95_ms": _num(ttft[1]),
        "input_tokens": int(row.get("input_tokens") or 0),
        "output_tokens": int(row.get("output_tokens") or 0),
        "cost_usd": float(row.get("cost_usd") or 0.0),
        "unpriced_requests": int(row.get("unpriced_requests") or 0),
        "output_tokens_per_s": _num(row.get("output_tokens_per_s")),
    }


def _rate(row: dict[str, Any], requests: int) -> dict[str, Any]:
    """Requests per second over the time the window had calls (first call to last), not over the
    whole window: minutes of traffic in a day's range read at their real rate. n calls span n - 1
    intervals; a single call has no rate."""
    if requests < 2:
        return {"request_rate_per_s": None, "active_seconds": 0.0}
    active = max((int(row["last_ms"]) - int(row["first_ms"])) / 1000, 1.0)
    return {"request_rate_per_s": (requests - 1) / active, "active_seconds": active}


def _filled(rows: list[dict[str, Any]], buckets: list[str]) -> list[dict[str, Any]]:
    """One point per bucket of the window: quiet buckets count zero (percentiles stay null)."""
    by_bucket = {row["bucket"]: row for row in rows}
    return [{"bucket": b, **_measures(by_bucket.get(b, {}))} for b in sorted({*buckets, *by_bucket})]


def _model_shares(rows: list[dict[str, Any]], requests: int) -> list[dict[str, Any]]:
    return [{
        "model": r["model"] or "(unknown)", "requests": int(r["requests"]), "errors": int(r["errors"]),
        "share": int(r["requests"]) / requests if requests else 0.0,
        "input_tokens": int(r["input_tokens"]), "output_tokens": int(r["output_tokens"]),
        "cost_usd": float(r["cost_usd"]),
    } for r in rows]


def _histogram(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts = {float(r["lower_ms"]): int(r["requests"]) for r in rows}
    bounds = [*HISTOGRAM_BOUNDS_MS, None]
    return [{"lower_ms": lo, "upper_ms": hi, "requests": counts.get(float(lo), 0)}
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def _cost_row(row: dict[str, Any]) -> dict[str, Any]:
    return {"app": row["app"], "department": row["department"], "requests": int(row["requests"]),
            "input_tokens": int(row["input_tokens"]), "output_tokens": int(row["output_tokens"]),
            "cost_usd": float(row["cost_usd"]), "unpriced_requests": int(row["unpriced_requests"])}


def _num(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) or math.isinf(number) else round(number, 3)


def _iso(value: Any) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
