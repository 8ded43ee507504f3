"""Trace search by a compiled TraceQL query -> trace summaries (the /api/v1/traces item shape)."""

from __future__ import annotations

import re
from typing import Any, Protocol

from llmlens.server.query.call_context import CALLS, TRACE_COLUMNS
from llmlens.server.query.event_tools import with_event_tools
from llmlens.server.query.traceql import CompiledQuery
from llmlens.server.query.traces import add_unpriced_counts, decode_cursor, encode_cursor
from llmlens.server.query.window import Window, rfc3339


class Store(Protocol):
    async def fetch(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]: ...


# The LLM side is joined only when the query reads it, and only for the window's rows.
_LLM_COLUMNS = """TraceId, SpanId, Operation, Provider, RequestModel, ResponseModel, InputTokens,
           OutputTokens, CachedInputTokens, ReasoningTokens, CostUsd, Streaming, TtftMs,
           FinishReasons, ErrorType, App, Department, UserId, SessionId, ToolNames"""
_LLM_JOIN = f"""
LEFT JOIN (
    SELECT {_LLM_COLUMNS}
    FROM llm_calls
    WHERE Timestamp >= {{start:DateTime64(9)}} AND Timestamp < {{end:DateTime64(9)}}
) AS l ON l.TraceId = s.TraceId AND l.SpanId = s.SpanId"""
# A query on session, user, app or department reads the call's own value, else its trace's
# (query/call_context.py). The compiled fragments hold our column names, never user text.
_LLM_CONTEXT_JOIN = f"""
LEFT JOIN (SELECT {_LLM_COLUMNS} FROM {CALLS}) AS l ON l.TraceId = s.TraceId AND l.SpanId = s.SpanId"""
_READS_CONTEXT = re.compile(r"\bl\.(?:" + "|".join(TRACE_COLUMNS) + r")\b")
# A query on tool names also reads those of log events (openai-v2's gen_ai.choice: query/event_tools.py).
_READS_TOOLS = re.compile(r"\bl\.ToolNames\b")
_WINDOW_CALLS = "llm_calls WHERE Timestamp >= {start:DateTime64(9)} AND Timestamp < {end:DateTime64(9)}"

# The matching traces, newest matching span first: one page of (time, trace id) keys past the cursor.
# The cursor is on the aggregate, so it goes in HAVING: dropping newer rows in WHERE would lower the
# max of a trace that matched after the cursor and bring it back.
_MATCH_SQL = """
SELECT s.TraceId AS trace_id, toString(max(s.Timestamp)) AS last_match
FROM otel_traces AS s{join}
WHERE s.Timestamp >= {start:DateTime64(9)} AND s.Timestamp < {end:DateTime64(9)} AND ({where})
GROUP BY s.TraceId
{having}
ORDER BY max(s.Timestamp) DESC, s.TraceId DESC
LIMIT {limit:UInt32}
"""

# Their summaries from trace_index, computed as GET /api/v1/traces computes them so both lists agree.
_SUMMARY_SQL = """
SELECT
    TraceId AS trace_id,
    max(RootService) AS root_service,
    max(RootName) AS root_name,
    formatDateTime(min(Start), '%Y-%m-%dT%H:%i:%S.%fZ') AS start_time,
    dateDiff('nanosecond', min(Start), max(End)) / 1e6 AS duration_ms,
    sum(SpanCount) AS span_count,
    sum(ErrorCount) > 0 AS error,
    sum(LlmCalls) AS llm_calls,
    sum(InputTokens) AS input_tokens,
    sum(OutputTokens) AS output_tokens,
    sum(CostUsd) AS cost_usd
FROM trace_index
WHERE Day >= toDate({start:DateTime64(9)}) - 1 AND Day <= toDate({end:DateTime64(9)})
  AND TraceId IN {ids:Array(String)}
GROUP BY TraceId
"""

_AFTER_CURSOR = ("(max(s.Timestamp) < {c_time:DateTime64(9)} "
                 "OR (max(s.Timestamp) = {c_time:DateTime64(9)} AND s.TraceId < {c_trace:String}))")


def search_sql(compiled: CompiledQuery, *, after_cursor: bool = False) -> str:
    """The matching statement for a compiled query; only fixed text and compiled fragments go in."""
    having = [f"({compiled.having})"] if compiled.having else []
    if after_cursor:
        having.append(_AFTER_CURSOR)
    join = ""
    if compiled.uses_llm:
        reads_context = _READS_CONTEXT.search(f"{compiled.where} {compiled.having or ''}")
        join = _LLM_CONTEXT_JOIN if reads_context else _LLM_JOIN
        if _READS_TOOLS.search(f"{compiled.where} {compiled.having or ''}"):
            calls = with_event_tools(CALLS if reads_context else _WINDOW_CALLS, _LLM_COLUMNS)
            join = f"\nLEFT JOIN {calls} AS l ON l.TraceId = s.TraceId AND l.SpanId = s.SpanId"
    return (_MATCH_SQL
            .replace("{join}", join)
            .replace("{where}", compiled.where)
            .replace("{having}", f"HAVING {' AND '.join(having)}" if having else ""))


async def search_traces(store: Store, compiled: CompiledQuery, window: Window, limit: int,
                        cursor: str | None = None) -> dict[str, Any]:
    """One page of matching traces, newest matching span first, and the cursor of the next page."""
    params: dict[str, Any] = {**compiled.params, **window.params(), "limit": limit + 1}
    if cursor is not None:
        params["c_time"], params["c_trace"] = decode_cursor(cursor)
    matched = await store.fetch(search_sql(compiled, after_cursor=cursor is not None), params)
    page, more = matched[:limit], len(matched) > limit
    if not page:
        return {"items": [], "next_cursor": None}
    rows = await store.fetch(_SUMMARY_SQL, {**window.params(), "ids": [m["trace_id"] for m in page]})
    by_id = {row["trace_id"]: row for row in rows}
    # A trace that started over a day before the window has no index row there: it is left out.
    items = [_item(by_id[m["trace_id"]]) for m in page if m["trace_id"] in by_id]
    last = page[-1]
    return {"items": await add_unpriced_counts(store, items),
            "next_cursor": encode_cursor(last["last_match"], last["trace_id"]) if more else None}


def _item(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "trace_id": row["trace_id"],
        "root_service": row["root_service"] or None,
        "root_name": row["root_name"] or None,
        "start_time": rfc3339(row["start_time"]),
        "duration_ms": round(float(row["duration_ms"]), 3),
        "span_count": int(row["span_count"]),
        "error": bool(int(row["error"])),
        "llm_calls": int(row["llm_calls"]),
        "input_tokens": int(row["input_tokens"]),
        "output_tokens": int(row["output_tokens"]),
        "cost_usd": round(float(row["cost_usd"]), 10),
    }

