"""Trace search by a compiled TraceQL query -> trace summaries (the /api/v1/traces item shape)."""

from __future__ import annotations

from typing import Any, Protocol

from llmlens.server.query.traceql import CompiledQuery
from llmlens.server.query.traces import add_unpriced_counts
from llmlens.server.query.window import Window, rfc3339


class Store(Protocol):
    async def fetch(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]: ...


# The LLM side is joined only when the query reads it, and only for the window's rows.
_LLM_JOIN = """
LEFT JOIN (
    SELECT TraceId, SpanId, Operation, Provider, RequestModel, ResponseModel, InputTokens,
           OutputTokens, CachedInputTokens, ReasoningTokens, CostUsd, Streaming, TtftMs,
           FinishReasons, ErrorType, App, Department, UserId, SessionId, ToolNames
    FROM llm_calls
    WHERE Timestamp >= {start:DateTime64(9)} AND Timestamp < {end:DateTime64(9)}
) AS l ON l.TraceId = s.TraceId AND l.SpanId = s.SpanId"""

# Matching traces first (newest matching span first), then their summaries from trace_index,
# computed as GET /api/v1/traces computes them so both lists agree.
_SEARCH_SQL = """
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
  AND TraceId IN (
    SELECT s.TraceId
    FROM otel_traces AS s{join}
    WHERE s.Timestamp >= {start:DateTime64(9)} AND s.Timestamp < {end:DateTime64(9)} AND ({where})
    GROUP BY s.TraceId{having}
    ORDER BY max(s.Timestamp) DESC
    LIMIT {limit:UInt32}
  )
GROUP BY TraceId
ORDER BY min(Start) DESC, TraceId DESC
"""


def search_sql(compiled: CompiledQuery) -> str:
    """The full statement for a compiled query; only fixed text and compiled fragments go in."""
    return (_SEARCH_SQL
            .replace("{join}", _LLM_JOIN if compiled.uses_llm else "")
            .replace("{where}", compiled.where)
            .replace("{having}", f"\n    HAVING {compiled.having}" if compiled.having else ""))


async def search_traces(store: Store, compiled: CompiledQuery, window: Window, limit: int) -> list[dict[str, Any]]:
    params = {**compiled.params, **window.params(), "limit": limit}
    rows = await store.fetch(search_sql(compiled), params)
    return await add_unpriced_counts(store, [_item(row) for row in rows])


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
