"""Conversations: LLM calls grouped by their normalised session id (the call's own, else its trace's:
query/call_context.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from llmlens import semconv
from llmlens.server.query import keyset
from llmlens.server.query.call_context import CALLS
from llmlens.server.query.llm_filter import LlmFilter
from llmlens.server.query.overview import MODEL_EXPR
from llmlens.server.query.search import Store
from llmlens.server.query.window import Window

PREVIEW_CHARS = 400
_TIME = "'%Y-%m-%dT%H:%i:%S.%fZ'"
_CALL_END = "Timestamp + toIntervalNanosecond(Duration)"
# A trace's rows sit under the day of each batch's first span: a call's may be a day later.
_DAYS = "Day >= toDate({start:DateTime64(9)}) - 1 AND Day <= toDate({end:DateTime64(9)})"
MAX_TURNS = 2000

LIST_SQL = f"""
SELECT SessionId AS session_id, uniqExact(TraceId) AS turns, count() AS llm_calls,
       formatDateTime(min(Timestamp), {_TIME}) AS start_time,
       formatDateTime(max({_CALL_END}), {_TIME}) AS end_time,
       dateDiff('microsecond', min(Timestamp), max({_CALL_END})) / 1000 AS duration_ms,
       sum(InputTokens) AS input_tokens, sum(OutputTokens) AS output_tokens, sum(CostUsd) AS cost_usd,
       countIf(IsError) AS errors, countIf(NOT Priced) AS unpriced_requests,
       groupUniqArrayIf(5)(UserId, UserId != '') AS users,
       groupUniqArrayIf(5)(toString(App), App != '') AS apps,
       groupUniqArrayIf(5)(toString({MODEL_EXPR}), {MODEL_EXPR} != '') AS models,
       toString(max(Timestamp)) AS last_call
FROM {CALLS} WHERE {{where}} AND SessionId != ''
GROUP BY SessionId {{having}}
ORDER BY max(Timestamp) DESC, session_id LIMIT {{limit:UInt32}}"""
# Past a page's last session: keyset on (last call, session id), on the aggregate, hence in HAVING.
_AFTER_CURSOR = ("HAVING max(Timestamp) < {c_time:DateTime64(9)} "
                 "OR (max(Timestamp) = {c_time:DateTime64(9)} AND SessionId > {c_session:String})")

# The session's model calls, in two disjoint parts: those that set the session themselves (read
# from llm_calls' by_session projection, schema 13: one key range, not every call of the window),
# and those that set none, of the traces whose trace_index rows hold the session (the only calls
# that can inherit it: query/call_context.equals). Then completed with their traces' session and
# user from trace_index, for those calls' traces only, and kept where the completed session is the
# one asked: the calls CALLS would give under the same filter. One row per turn, with the times of
# its first and last call. The sessionless part looks up only the traces of sessionless calls in
# trace_index: an IN set of every trace of the session would be checked against llm_calls' TraceId
# bloom filter, granule by granule (~60 ms on 5M spans, even with no sessionless call).
_TURN_COLUMNS = "TraceId, SpanId, Timestamp, InputTokens, OutputTokens, CostUsd, Priced, IsError, UserId, SessionId"
TURNS_SQL = f"""
WITH calls AS (
    SELECT {_TURN_COLUMNS} FROM llm_calls WHERE {{where}} AND SessionId = {{f_session:String}}
    UNION ALL
    SELECT {_TURN_COLUMNS} FROM llm_calls WHERE {{where}} AND SessionId = ''
      AND TraceId IN (SELECT TraceId FROM trace_index WHERE {_DAYS} AND SessionId = {{f_session:String}}
                        AND TraceId IN (SELECT TraceId FROM llm_calls WHERE {{where}} AND SessionId = ''))
)
SELECT TraceId AS trace_id, formatDateTime(min(Timestamp), {_TIME}) AS first_call,
       count() AS llm_calls, sum(InputTokens) AS input_tokens, sum(OutputTokens) AS output_tokens,
       sum(CostUsd) AS cost_usd, countIf(NOT Priced) AS unpriced_requests, countIf(IsError) AS llm_errors,
       groupUniqArrayIf(5)(UserId, UserId != '') AS users,
       argMin(SpanId, Timestamp) AS first_span, argMax(SpanId, Timestamp) AS last_span,
       toString(min(Timestamp)) AS first_at, toString(max(Timestamp)) AS last_at
FROM (
    SELECT c.* REPLACE (if(c.SessionId != '', c.SessionId, t.TraceSessionId) AS SessionId,
                        if(c.UserId != '', c.UserId, t.TraceUserId) AS UserId)
    FROM calls AS c
    LEFT JOIN (
        SELECT TraceId, max(SessionId) AS TraceSessionId, max(UserId) AS TraceUserId FROM trace_index
        WHERE {_DAYS} AND TraceId IN (SELECT TraceId FROM calls WHERE SessionId = '' OR UserId = '')
        GROUP BY TraceId
    ) AS t ON t.TraceId = c.TraceId
) WHERE SessionId = {{f_session:String}}
GROUP BY TraceId ORDER BY min(Timestamp), trace_id LIMIT {MAX_TURNS}"""

# The prompt of each turn's first call and the response of its last, from their spans (the text is
# stored once, in otel_traces), read by exact keys: the calls' seconds are in otel_traces' sorting
# key (service, span name, second), their times bound the partitions.
TEXT_SQL = """
SELECT TraceId AS trace_id, SpanId AS span_id, SpanAttributes AS attributes FROM otel_traces
WHERE Timestamp >= {first:DateTime64(9)} AND Timestamp <= {last:DateTime64(9)}
  AND toDateTime(Timestamp) IN {seconds:Array(DateTime)}
  AND SpanId IN {spans:Array(String)} AND TraceId IN {traces:Array(String)}
LIMIT 1 BY TraceId, SpanId"""

# Whole-trace facts (root span, duration, span errors) of the listed turns, from trace_index.
TRACES_SQL = f"""
SELECT TraceId AS trace_id, max(RootName) AS root_name, max(RootService) AS root_service,
       formatDateTime(min(Start), {_TIME}) AS start_time,
       dateDiff('microsecond', min(Start), max(End)) / 1000 AS duration_ms,
       sum(SpanCount) AS span_count, sum(ErrorCount) AS error_spans
FROM trace_index
WHERE {_DAYS} AND TraceId IN {{traces:Array(String)}}
GROUP BY TraceId"""


async def list_sessions(store: Store, flt: LlmFilter, limit: int, cursor: str | None = None) -> dict[str, Any]:
    """One page of sessions, most recently active first, and the cursor of the next page."""
    params: dict[str, Any] = {**flt.params(), "limit": limit + 1}
    if cursor is not None:
        params["c_time"], params["c_session"] = keyset.decode(cursor, "time", "text")
    sql = LIST_SQL.replace("{where}", flt.where()).replace("{having}", _AFTER_CURSOR if cursor is not None else "")
    rows = await store.fetch(sql, params)
    rows, more = rows[:limit], len(rows) > limit
    items = [{
        "session_id": r["session_id"], "turns": int(r["turns"]), "llm_calls": int(r["llm_calls"]),
        "start_time": r["start_time"], "end_time": r["end_time"], "duration_ms": round(float(r["duration_ms"]), 3),
        "input_tokens": int(r["input_tokens"]), "output_tokens": int(r["output_tokens"]),
        "cost_usd": float(r["cost_usd"]), "errors": int(r["errors"]),
        "unpriced_requests": int(r["unpriced_requests"]),
        "users": r["users"], "apps": r["apps"], "models": r["models"],
    } for r in rows]
    next_cursor = keyset.encode(rows[-1]["last_call"], rows[-1]["session_id"]) if more else None
    return {"items": items, "next_cursor": next_cursor}


async def get_session(store: Store, window: Window, session_id: str) -> dict[str, Any] | None:
    # The window and model calls: the session condition is TURNS_SQL's own.
    flt = LlmFilter.of(window)
    where, params = flt.where(), {**flt.params(), "f_session": session_id}
    turns = await store.fetch(TURNS_SQL.replace("{where}", where), params)
    if not turns:
        return None
    # Then only the listed turns' traces and spans, by their ids and times.
    traces_of = {"traces": [t["trace_id"] for t in turns]}
    texts_of = {**traces_of, "spans": [s for t in turns for s in (t["first_span"], t["last_span"])],
                "first": min(t["first_at"] for t in turns), "last": max(t["last_at"] for t in turns),
                "seconds": sorted({at[:19] for t in turns for at in (t["first_at"], t["last_at"])})}
    traces, texts = await asyncio.gather(store.fetch(TRACES_SQL, {**params, **traces_of}),
                                         store.fetch(TEXT_SQL, texts_of))
    by_id = {t["trace_id"]: t for t in traces}
    attributes = {(t["trace_id"], t["span_id"]): t["attributes"] for t in texts}
    items = [_turn(i, turn, by_id.get(turn["trace_id"], {}), attributes) for i, turn in enumerate(turns, 1)]
    return {
        "session_id": session_id,
        "turns": len(items),
        "start_time": items[0]["start_time"],
        "llm_calls": sum(t["llm_calls"] for t in items),
        "input_tokens": sum(t["input_tokens"] for t in items),
        "output_tokens": sum(t["output_tokens"] for t in items),
        "cost_usd": sum(t["cost_usd"] for t in items),
        "unpriced_requests": sum(t["unpriced_requests"] for t in items),
        "errors": sum(1 for t in items if t["error"]),
        "users": sorted({u for t in turns for u in t["users"]}),
        "traces": items,
    }


def _turn(number: int, turn: dict[str, Any], trace: dict[str, Any],
          attributes: dict[tuple[str, str], dict[str, str]]) -> dict[str, Any]:
    return {
        "turn": number,
        "trace_id": turn["trace_id"],
        "start_time": trace.get("start_time") or turn["first_call"],
        "root_name": trace.get("root_name", ""),
        "root_service": trace.get("root_service", ""),
        "duration_ms": round(float(trace.get("duration_ms") or 0.0), 3),
        "span_count": int(trace.get("span_count") or 0),
        "llm_calls": int(turn["llm_calls"]),
        "input_tokens": int(turn["input_tokens"]),
        "output_tokens": int(turn["output_tokens"]),
        "cost_usd": float(turn["cost_usd"]),
        "unpriced_requests": int(turn["unpriced_requests"]),
        "error": int(turn["llm_errors"]) > 0 or int(trace.get("error_spans") or 0) > 0,
        "input_preview": semconv.content(attributes.get((turn["trace_id"], turn["first_span"]), {}))[0][:PREVIEW_CHARS],
        "output_preview": semconv.content(attributes.get((turn["trace_id"], turn["last_span"]), {}))[1][:PREVIEW_CHARS],
    }
