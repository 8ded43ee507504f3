"""Trace list (newest first, filtered, paginated by an opaque cursor) and one whole trace."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from llmlens import semconv
from llmlens.server.errors import BadParameter
from llmlens.server.query import llm_details
from llmlens.server.query.llm_filter import MODEL_CALLS
from llmlens.server.query.window import Window, rfc3339, sql_time
from llmlens.server.store import Store

_NS = 1_000_000_000


@dataclass
class TraceFilters:
    service: str | None = None
    name: str | None = None
    model: str | None = None
    status: str | None = None  # ok | error
    min_duration_ms: float | None = None
    max_duration_ms: float | None = None
    attrs: list[tuple[str, str]] = field(default_factory=list)


def encode_cursor(start: str, trace_id: str) -> str:
    raw = json.dumps([start, trace_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        start, trace_id = json.loads(raw)
        if not (isinstance(start, str) and isinstance(trace_id, str) and len(trace_id) == 32):
            raise ValueError
        int(trace_id, 16)
        datetime.strptime(start[:19], "%Y-%m-%d %H:%M:%S")
        if not start[20:].isdigit() and start[19:]:
            raise ValueError
    except (ValueError, TypeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadParameter("cursor", "cursor is not one this server issued") from exc
    return start, trace_id


# The list groups the traces from the Start of the index's k-th newest row on, for a growing k:
# trace_index's by_start projection finds that row in the last granules of its Start order; the
# traces from then on are grouped from the rows of the list_by_start projection (schema 12) from
# that Start on, the last granule or two of the same order, however big the store (parts written
# before schema 12 are read by (Day, TraceId) as before).
# Results are exact: a trace's first row holds its start, so every trace starting in [lo, hi] has a
# row there, and every row of such a trace starts at lo or later; the newest N of [lo, hi] are the
# newest N of [start, hi] whenever [lo, hi] holds more than N traces. A trace whose rows start at lo
# or later may still have an earlier row (a batch holding an earlier span, exported apart): then it
# started before lo and is not in [lo, hi]. Its rows from lo on do not include its root span's row
# (spans start within their root), or show a span starting before the root: only such traces are
# looked up by id for a row before lo (_EARLIER_SQL), usually none.
_NEWEST_ROWS = (1, 8, 64)  # multiples of limit + 1
_KTH_NEWEST_SQL = """
    SELECT Start FROM trace_index
    WHERE Day >= toDate({start:DateTime64(9)}) - 1 AND Day <= toDate({hi:DateTime64(9)})
      AND Start BETWEEN {start:DateTime64(9)} AND {hi:DateTime64(9)}
    ORDER BY Start DESC LIMIT 1 OFFSET {skip:UInt64}
"""
_RECENT = timedelta(minutes=1)  # a window ending this close to now is "up to now"
_NO_ROOT = "2200-01-01 00:00:00"  # RootStart of a row without its trace's root span (store/trace_index.py)
_EARLIER_SQL = """
    SELECT DISTINCT TraceId AS trace_id FROM trace_index
    WHERE Day >= toDate({lo:DateTime64(9)}) - 1 AND Day <= toDate({hi:DateTime64(9)})
      AND TraceId IN {ids:Array(String)} AND Start < {lo:DateTime64(9)}
"""


async def list_traces(store: Store, window: Window, filters: TraceFilters, limit: int,
                      cursor: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {**window.params(), "limit": limit + 1}
    hi = window.end
    if cursor:
        c_start, c_trace = decode_cursor(cursor)
        params["c_start"], params["c_trace"] = c_start, c_trace
        hi = min(hi, datetime.strptime(c_start[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC) + timedelta(seconds=1))
    params["hi"] = sql_time(hi)
    # A page that reaches to now has no rows after hi to leave out (see _list_sql).
    to_now = hi >= datetime.now(UTC) - _RECENT
    sql = _list_sql(filters, params, cursor is not None, bounded=not to_now)
    rows: list[dict[str, Any]] = []
    for times in (*_NEWEST_ROWS, None):
        kth = [] if times is None else await store.fetch(_KTH_NEWEST_SQL, {**params, "skip": times * (limit + 1) - 1})
        lo = kth[0]["Start"] if kth else sql_time(window.start)
        rows = await _without_earlier_rows(store, await store.fetch(sql, {**params, "lo": lo}), {**params, "lo": lo})
        if len(rows) > limit or not kth:
            break
    page, more = rows[:limit], len(rows) > limit
    items = await add_unpriced_counts(store, [trace_item(row) for row in page])
    next_cursor = encode_cursor(page[-1]["start_time"], page[-1]["trace_id"]) if more and page else None
    return {"items": items, "next_cursor": next_cursor}


async def _without_earlier_rows(store: Store, rows: list[dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
    """`rows` less the traces with a row before lo (they started before it: see above)."""
    unsure = [row["trace_id"] for row in rows
              if row["root_start"].startswith(_NO_ROOT[:4]) or row["start_time"] < row["root_start"]]
    if not unsure:
        return rows
    earlier = {r["trace_id"] for r in await store.fetch(_EARLIER_SQL, {**params, "ids": unsure})}
    return [row for row in rows if row["trace_id"] not in earlier]


def _list_sql(filters: TraceFilters, params: dict[str, Any], has_cursor: bool, bounded: bool = True) -> str:
    """The trace list over [lo, hi]; only placeholders, never user text.

    A trace is listed when it has a row starting in [lo, hi]; all its rows from lo on are summed
    (a later batch's spans count too). Grouping the rows from lo on and keeping the groups whose
    first Start is at most hi lists exactly those traces. `bounded` first narrows the rows grouped to
    the traces with a row in [lo, hi] (a set read beforehand): the same traces, less grouping when
    many rows start after hi (an older page), an extra read of the index otherwise (a page up to now).
    """
    in_window = "{lo:DateTime64(9)} AND {hi:DateTime64(9)}"
    where = ["Start >= {lo:DateTime64(9)}", "Day >= toDate({lo:DateTime64(9)}) - 1", "Day <= toDate({hi:DateTime64(9)})"]
    if bounded:
        where.append("TraceId IN (SELECT TraceId FROM trace_index WHERE Day >= toDate({lo:DateTime64(9)}) "
                     f"AND Day <= toDate({{hi:DateTime64(9)}}) AND Start BETWEEN {in_window})")
    span_conditions = []
    if filters.service:
        span_conditions.append("ServiceName = {service:String}")
        params["service"] = filters.service
    if filters.name:
        span_conditions.append("SpanName = {name:String}")
        params["name"] = filters.name
    for i, (key, value) in enumerate(filters.attrs):
        span_conditions.append(f"(SpanAttributes[{{ak{i}:String}}] = {{av{i}:String}} "
                               f"OR ResourceAttributes[{{ak{i}:String}}] = {{av{i}:String}})")
        params[f"ak{i}"], params[f"av{i}"] = key, value
    # A matching span starts at or after its trace: look from lo to hi plus an hour of trace length.
    span_window = "{lo:DateTime64(9)} AND {hi:DateTime64(9)} + INTERVAL 1 HOUR"
    if span_conditions:
        where.append(f"TraceId IN (SELECT TraceId FROM otel_traces WHERE Timestamp BETWEEN {span_window} AND "
                     + " AND ".join(span_conditions) + ")")
    if filters.model:
        where.append(f"TraceId IN (SELECT TraceId FROM llm_calls WHERE Timestamp BETWEEN {span_window} "
                     "AND (RequestModel = {model:String} OR ResponseModel = {model:String}))")
        params["model"] = filters.model
    having = ["span_count > 0", "start_time >= {start:DateTime64(9)}", "start_time >= {lo:DateTime64(9)}",
              "start_time <= {end:DateTime64(9)}", "start_time <= {hi:DateTime64(9)}"]
    if filters.status == "error":
        having.append("error_count > 0")
    elif filters.status == "ok":
        having.append("error_count = 0")
    if filters.min_duration_ms is not None:
        having.append("duration_ms >= {min_ms:Float64}")
        params["min_ms"] = filters.min_duration_ms
    if filters.max_duration_ms is not None:
        having.append("duration_ms <= {max_ms:Float64}")
        params["max_ms"] = filters.max_duration_ms
    if has_cursor:
        having.append("(start_time, TraceId) < ({c_start:DateTime64(9)}, {c_trace:String})")
    return f"""
        SELECT TraceId AS trace_id, min(Start) AS start_time,
               dateDiff('nanosecond', min(Start), max(End)) / 1e6 AS duration_ms,
               sum(SpanCount) AS span_count, sum(ErrorCount) AS error_count,
               max(RootService) AS root_service, max(RootName) AS root_name,
               sum(LlmCalls) AS llm_calls, sum(InputTokens) AS input_tokens,
               sum(OutputTokens) AS output_tokens, sum(CostUsd) AS cost_usd, min(RootStart) AS root_start
        FROM trace_index
        WHERE {" AND ".join(where)}
        GROUP BY TraceId
        HAVING {" AND ".join(having)}
        ORDER BY start_time DESC, TraceId DESC
        LIMIT {{limit:UInt32}}
    """


def trace_item(row: dict[str, Any]) -> dict[str, Any]:
    """One row of a trace list, shared by /traces and /search."""
    return {
        "trace_id": row["trace_id"],
        "root_service": row["root_service"] or None,
        "root_name": row["root_name"] or None,
        "start_time": rfc3339(row["start_time"]),
        "duration_ms": round(float(row["duration_ms"] or 0), 3),
        "span_count": int(row["span_count"]),
        "error": int(row["error_count"]) > 0,
        "llm_calls": int(row["llm_calls"]),
        "input_tokens": int(row["input_tokens"]),
        "output_tokens": int(row["output_tokens"]),
        "cost_usd": round(float(row["cost_usd"]), 10),
    }


# trace_index sums cost but cannot tell a call priced at $0 from one with no known price: the
# unpriced model calls are counted from llm_calls, for the listed traces only and within their times.
_UNPRICED_SQL = f"""
    SELECT TraceId AS trace_id, uniqExactIf(SpanId, NOT Priced) AS unpriced
    FROM llm_calls
    WHERE Timestamp >= {{first:DateTime64(9)}}
      AND Timestamp <= {{last:DateTime64(9)}} + toIntervalMillisecond({{span_ms:UInt64}})
      AND TraceId IN {{ids:Array(String)}} AND {MODEL_CALLS}
    GROUP BY TraceId
"""


async def add_unpriced_counts(store: Store, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sets each trace item's `unpriced_requests`: its model calls without a known price (their cost
    is not in `cost_usd`, so a list must not show that sum as the trace's whole cost)."""
    for item in items:
        item["unpriced_requests"] = 0
    with_calls = [item for item in items if item["llm_calls"]]
    if not with_calls:
        return items
    starts = sorted(item["start_time"] for item in with_calls)  # RFC 3339, one format: sorts as time
    longest_ms = max(item["duration_ms"] for item in with_calls)
    params = {"ids": [item["trace_id"] for item in with_calls], "first": _from_rfc3339(starts[0]),
              "last": _from_rfc3339(starts[-1]), "span_ms": int(longest_ms) + 1}
    counts = {row["trace_id"]: int(row["unpriced"]) for row in await store.fetch(_UNPRICED_SQL, params)}
    for item in with_calls:
        item["unpriced_requests"] = counts.get(item["trace_id"], 0)
    return items


def _from_rfc3339(text: str) -> str:
    """'2025-01-02T03:04:05.123456Z' -> ClickHouse's text form (parameters parse only that)."""
    return text.replace("T", " ").removesuffix("Z")


# A trace's time span from trace_index (sorted by Day, TraceId: one granule per day's part), read
# once; its spans and calls are then read from those times' partitions and granules only (and their
# TraceId bloom filters), so the cost stays flat as the store grows.
_TIMES_SQL = """
    SELECT toString(min(Start)) AS first, toString(max(End)) AS last, count() AS rows
    FROM trace_index WHERE TraceId = {trace_id:String}
"""
_IN_TIMES = "AND Timestamp BETWEEN {first:DateTime64(9)} AND {last:DateTime64(9)}"
_SPAN_SQL = """
    SELECT SpanId, ParentSpanId, ServiceName, SpanName, SpanKind, Timestamp,
           toUnixTimestamp64Nano(Timestamp) AS start_ns, Duration, StatusCode, StatusMessage,
           SpanAttributes, ResourceAttributes, ScopeName, ScopeVersion, TraceState,
           Events.Timestamp AS ev_ts, Events.Name AS ev_name, Events.Attributes AS ev_attrs,
           Links.TraceId AS link_trace, Links.SpanId AS link_span, Links.TraceState AS link_state,
           Links.Attributes AS link_attrs
    FROM otel_traces
    WHERE TraceId = {{trace_id:String}} {in_times}
    ORDER BY Timestamp
    LIMIT 1 BY SpanId
"""
_LLM_SQL = """
    SELECT SpanId, Operation, Provider, RequestModel, ResponseModel, InputTokens, OutputTokens,
           CachedInputTokens, ReasoningTokens, CostUsd, Priced, Streaming, TtftMs, FinishReasons,
           ErrorType, App, Department, UserId, SessionId, Convention, ToolNames, TokensEstimated,
           ProviderRaw, RequestModelRaw
    FROM llm_calls WHERE TraceId = {{trace_id:String}} {in_times}
    LIMIT 1 BY SpanId
"""


async def _fetch_trace(store: Store, trace_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict]:
    """The trace's span rows, LLM call rows and gen_ai log events (llm_details.log_events): within its
    indexed times; over the whole store when none are there (an id trace_index lacks, or a commit
    whose trace_index rows, written last, are not in yet), so nothing stored is missed."""
    params: dict[str, Any] = {"trace_id": trace_id}
    times = await store.fetch(_TIMES_SQL, params)
    if times and int(times[0]["rows"]):
        params.update(first=times[0]["first"], last=times[0]["last"])
        # Spans, LLM facts and log events at once (the store has a pool of readers): latency is the slowest.
        # The events' window is the one the spans' start times would give, or wider by the last span's length.
        rows, calls, events = await asyncio.gather(
            store.fetch(_SPAN_SQL.format(in_times=_IN_TIMES), params),
            store.fetch(_LLM_SQL.format(in_times=_IN_TIMES), params),
            llm_details.log_events(store, trace_id, _ns(params["first"]), _ns(params["last"])))
        if rows:
            return rows, calls, events
    rows, calls = await asyncio.gather(store.fetch(_SPAN_SQL.format(in_times=""), params),
                                       store.fetch(_LLM_SQL.format(in_times=""), params))
    if not calls:
        return rows, calls, {}
    starts = [int(row["start_ns"]) for row in rows]
    return rows, calls, await llm_details.log_events(store, trace_id, min(starts), max(starts))


def _ns(text: str) -> int:
    """ClickHouse's '2025-01-02 03:04:05.123456789' (UTC) -> nanoseconds since the epoch."""
    whole, _, fraction = text.partition(".")
    seconds = int(datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp())
    return seconds * _NS + int((fraction + "000000000")[:9])


async def get_trace(store: Store, trace_id: str) -> dict[str, Any] | None:
    trace_id = normalise_trace_id(trace_id)
    rows, calls, events = await _fetch_trace(store, trace_id)
    if not rows:
        return None
    llm = {row["SpanId"]: llm_facts(row) for row in calls}
    spans = [_span(row, llm.get(row["SpanId"])) for row in rows]
    if llm:
        llm_details.complete_calls(spans, events)
    return {"trace_id": trace_id, "spans": spans}


def normalise_trace_id(trace_id: str) -> str:
    lowered = trace_id.strip().lower()
    if len(lowered) != 32 or any(c not in "0123456789abcdef" for c in lowered):
        raise BadParameter("trace_id", "trace_id must be 32 hex characters")
    return lowered


def llm_facts(row: dict[str, Any]) -> dict[str, Any]:
    priced = bool(row["Priced"])
    return {
        "operation": row["Operation"] or None,
        "provider": row["Provider"] or None,
        "request_model": row["RequestModel"] or None,
        "response_model": row["ResponseModel"] or None,
        "input_tokens": int(row["InputTokens"]),
        "output_tokens": int(row["OutputTokens"]),
        "cached_input_tokens": int(row["CachedInputTokens"]),
        "reasoning_tokens": int(row["ReasoningTokens"]),
        "cost_usd": float(row["CostUsd"]) if priced else None,
        "priced": priced,
        "streaming": row["Streaming"],
        "ttft_ms": row["TtftMs"],
        "finish_reasons": list(row["FinishReasons"] or []),
        "error_type": row["ErrorType"] or None,
        "app": row["App"] or None,
        "department": row["Department"] or None,
        "user_id": row["UserId"] or None,
        "session_id": row["SessionId"] or None,
        "convention": row["Convention"] or None,
        "tool_names": list(row.get("ToolNames") or []),
        "tokens_estimated": bool(row.get("TokensEstimated")),
        "cost_estimated": bool(row.get("TokensEstimated")) and priced,  # priced from estimated tokens
        "provider_raw": row.get("ProviderRaw") or None,
        "request_model_raw": row.get("RequestModelRaw") or None,
    }


def _span(row: dict[str, Any], llm: dict[str, Any] | None) -> dict[str, Any]:
    start_ns = int(row["start_ns"])
    duration = int(row["Duration"])
    status = {"Ok": "ok", "Error": "error"}.get(row["StatusCode"], "unset")
    return {
        "span_id": row["SpanId"],
        "parent_span_id": row["ParentSpanId"] or None,
        "service": row["ServiceName"],
        "name": row["SpanName"],
        "kind": row["SpanKind"].lower(),
        "start_time": rfc3339(row["Timestamp"]),
        "end_time": rfc3339(sql_time_ns(start_ns + duration)),
        "start_unix_nano": start_ns,
        "duration_ms": duration / 1e6,
        "status": status,
        "status_message": row["StatusMessage"] or None,
        "attributes": row["SpanAttributes"],
        "resource": row["ResourceAttributes"],
        "scope": {"name": row["ScopeName"], "version": row["ScopeVersion"]},
        "events": [
            {"time": rfc3339(t), "name": n, "attributes": a}
            for t, n, a in zip(row["ev_ts"], row["ev_name"], row["ev_attrs"], strict=False)
        ],
        "links": [
            {"trace_id": t, "span_id": s, "trace_state": st or None, "attributes": a}
            for t, s, st, a in zip(row["link_trace"], row["link_span"], row["link_state"], row["link_attrs"],
                                   strict=False)
        ],
        "llm": llm if llm is None else {**llm, **_text(row["SpanAttributes"])},
    }


def _text(attributes: dict[str, str]) -> dict[str, str | None]:
    """A call's prompt and response, read from its span as the normaliser reads them: stored once,
    in the span (llm_calls rows written since this release leave their Input and Output empty)."""
    text_in, text_out = semconv.content(attributes)
    return {"input": text_in or None, "output": text_out or None}


def sql_time_ns(ns: int) -> str:
    """Nanoseconds since the epoch -> ClickHouse's text form, keeping all nine digits."""
    seconds, rest = divmod(ns, _NS)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S") + f".{rest:09d}"


__all__ = ["TraceFilters", "add_unpriced_counts", "get_trace", "list_traces", "llm_facts",
           "normalise_trace_id", "sql_time", "trace_item"]
