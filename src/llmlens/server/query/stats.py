"""LLM request statistics over a time range, grouped and optionally bucketed by a step.

Counts model calls only (chat, completions, embeddings, ...) unless an `operation` filter
asks for others: tool, retrieval and agent steps are LLM operations too, but counting
them as "requests" would inflate every rate.

App, department, user and session are the call's own, else its trace's (set on a span exported in
another request: query/call_context.py), whether grouped by or filtered on, as in Sessions, search
and costs. A query that neither groups by nor filters on them reads llm_calls as it is.
"""

from __future__ import annotations

import math
from typing import Any

from llmlens.semconv import MODEL_OPERATIONS
from llmlens.server.errors import BadParameter
from llmlens.server.query import call_context
from llmlens.server.query.window import Window, rfc3339
from llmlens.server.store import Store

# group_by name -> SQL expression over llm_calls. Only these names reach SQL text.
GROUPS = {
    "model": "if(RequestModel != '', RequestModel, ResponseModel)",
    "provider": "Provider",
    "service": "ServiceName",
    "app": "App",
    "department": "Department",
    "user": "UserId",
    "session": "SessionId",
    "operation": "Operation",
}
FILTERS = {"service": "ServiceName", "app": "App", "department": "Department", "provider": "Provider",
           "user": "UserId", "session": "SessionId", "operation": "Operation"}
# Names whose value a call inherits from its trace: grouped over call_context.CALLS, filtered with
# call_context.equals (only the trace_index rows holding the value are read).
INHERITED = {"app": "App", "department": "Department", "user": "UserId", "session": "SessionId"}
MAX_BUCKETS = 2000
# Written as llm_calls' stats_by_minute projection writes them (schema 11): ClickHouse reads an
# aggregate projection only for the same expressions.
AGGREGATES = """
    count() AS requests,
    countIf(IsError) AS errors,
    quantiles(0.5, 0.95, 0.99)(Duration / 1e6) AS latency,
    quantilesIf(0.5, 0.95)(assumeNotNull(TtftMs), TtftMs IS NOT NULL) AS ttft,
    countIf(TtftMs IS NOT NULL) AS ttft_count,
    sum(InputTokens) AS input_tokens,
    sum(OutputTokens) AS output_tokens,
    sum(CostUsd) AS cost_usd,
    countIf(NOT Priced) AS unpriced_requests,
    sumIf(OutputTokens, Streaming AND TtftMs IS NOT NULL) AS stream_tokens,
    sumIf(Duration / 1e9 - assumeNotNull(TtftMs) / 1e3, Streaming AND TtftMs IS NOT NULL) AS stream_seconds"""
# The groupings and filters whose columns are keys of that projection (inherited facts need trace_index).
BY_MINUTE_KEYS = {"model", "provider", "service", "operation"}


async def llm_stats(store: Store, window: Window, group_by: list[str], step_seconds: int | None,
                    filters: dict[str, str]) -> dict[str, Any]:
    for name in group_by:
        if name not in GROUPS:
            raise BadParameter("group_by", f"cannot group by {name!r}; choose from {', '.join(GROUPS)}")
    if step_seconds is not None and window.seconds / step_seconds > MAX_BUCKETS:
        raise BadParameter("step", f"step is too small for this range (over {MAX_BUCKETS} buckets)")
    params: dict[str, Any] = dict(window.params())
    where = ["Timestamp >= {start:DateTime64(9)}", "Timestamp < {end:DateTime64(9)}"]
    if "operation" not in filters:
        where.append("Operation IN (" + ", ".join(f"'{op}'" for op in MODEL_OPERATIONS) + ")")
    for name, value in filters.items():
        if name == "model":
            where.append("(RequestModel = {f_model:String} OR ResponseModel = {f_model:String})")
        elif name in INHERITED:
            where.append(call_context.equals(INHERITED[name], f"f_{name}"))
        elif name in FILTERS:
            where.append(f"{FILTERS[name]} = {{f_{name}:String}}")
        else:
            raise BadParameter(name, f"unknown filter {name!r}")
        params[f"f_{name}"] = value
    keys = [f"{GROUPS[name]} AS `{name}`" for name in dict.fromkeys(group_by)]
    if step_seconds is not None:
        keys.append("toStartOfInterval(Timestamp, toIntervalSecond({step:UInt32})) AS bucket")
        params["step"] = step_seconds
    select_keys = ", ".join(keys) + ", " if keys else ""
    group = "GROUP BY " + ", ".join(k.rsplit(" AS ", 1)[1] for k in keys) if keys else ""
    order = "ORDER BY " + ("bucket, " if step_seconds else "") + "requests DESC" if keys else ""
    if step_seconds and step_seconds % 60 == 0 and set(group_by) | set(filters) <= BY_MINUTE_KEYS:
        sql = _with_whole_buckets_by_minute(window, step_seconds, select_keys, where, group, params)
    else:
        source = call_context.CALLS if INHERITED.keys() & set(group_by) else "llm_calls"
        sql = f"SELECT {select_keys} {AGGREGATES} FROM {source} WHERE {' AND '.join(where)} {group}"
    sql = f"SELECT * FROM ({sql}) {order} LIMIT 10000"
    rows = await store.fetch(sql, params)
    groups = [_group(row, group_by, step_seconds is not None) for row in rows if int(row["requests"]) > 0]
    return {"start": rfc3339(params["start"]), "end": rfc3339(params["end"]), "step_seconds": step_seconds,
            "group_by": group_by, "groups": groups}


def _with_whole_buckets_by_minute(window: Window, step: int, select_keys: str, where: list[str], group: str,
                                  params: dict[str, Any]) -> str:
    """The stats SQL in two parts whose groups never overlap (the bucket is a key): the buckets
    wholly inside the window from the per-minute projection (a minute-aligned bound is the same
    condition on a call's minute as on its time), the one or two buckets at the window's ends
    from the calls."""
    start_s, end_s = math.floor(window.start.timestamp()), math.floor(window.end.timestamp())
    whole_from, whole_to = (start_s // step + 1) * step, end_s // step * step
    if whole_to <= whole_from:
        return f"SELECT {select_keys} {AGGREGATES} FROM llm_calls WHERE {' AND '.join(where)} {group}"
    params["whole_from"], params["whole_to"] = whole_from, whole_to
    others = where[2:]  # where[:2] bound Timestamp by the window
    minutes = ["toStartOfMinute(Timestamp) >= toDateTime({whole_from:UInt32})",
               "toStartOfMinute(Timestamp) < toDateTime({whole_to:UInt32})", *others]
    ends = [*where[:2], "(Timestamp < toDateTime({whole_from:UInt32}) OR Timestamp >= toDateTime({whole_to:UInt32}))",
            *others]
    # The bucket of a minute-aligned step is the same from the call's minute as from its time.
    by_minute = select_keys.replace("toStartOfInterval(Timestamp,", "toDateTime64(toStartOfInterval(toStartOfMinute(Timestamp),")
    by_minute = by_minute.replace(" AS bucket", ", 9) AS bucket")
    return (f"SELECT {by_minute} {AGGREGATES} FROM llm_calls WHERE {' AND '.join(minutes)} {group} UNION ALL "
            f"SELECT {select_keys} {AGGREGATES} FROM llm_calls WHERE {' AND '.join(ends)} {group}")


def _group(row: dict[str, Any], group_by: list[str], bucketed: bool) -> dict[str, Any]:
    requests = int(row["requests"])
    errors = int(row["errors"])
    latency = row["latency"] or [None, None, None]
    ttft = row["ttft"] if int(row["ttft_count"]) else [None, None]
    stream_seconds = float(row["stream_seconds"] or 0)
    out: dict[str, Any] = {name: row[name] for name in group_by}
    if bucketed:
        out["bucket"] = rfc3339(row["bucket"])
    out.update({
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests if requests else 0.0,
        "latency_p50_ms": _num(latency[0]),
        "latency_p95_ms": _num(latency[1]),
        "latency_p99_ms": _num(latency[2]),
        "ttft_p50_ms": _num(ttft[0]),
        "ttft_p95_ms": _num(ttft[1]),
        "input_tokens": int(row["input_tokens"]),
        "output_tokens": int(row["output_tokens"]),
        "cost_usd": round(float(row["cost_usd"]), 10),
        "unpriced_requests": int(row["unpriced_requests"]),
        "output_tokens_per_second": _num(float(row["stream_tokens"]) / stream_seconds) if stream_seconds > 0 else None,
    })
    return out


def _num(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) or math.isinf(number) else round(number, 3)
