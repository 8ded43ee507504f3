"""Tool calls carried by log events, joined to their LLM calls at query time.

openai-v2 (its default conventions version) records a call's answer as a `gen_ai.choice` log event,
whose body holds the tool calls the model asked for (`message.tool_calls[].function.name`); its span
holds none. Log records come in their own OTLP export (/v1/logs), never in the request that carries
the span, and in either order: so they are joined here, by (trace id, span id), when a query reads a
call's tool names, instead of at ingest. A call's own tool names (from its span) come first.

The trace view reads the same events in Python (semconv.event_content); this is the SQL for search.
"""

from __future__ import annotations

# Log records are written by another pipeline than spans: an hour either side of the window.
_MARGIN_S = 3600

# (TraceId, SpanId, EventToolNames) of the window's gen_ai.choice events that name tools.
EVENT_TOOL_NAMES = f"""
    SELECT TraceId, SpanId,
           arrayDistinct(arrayFlatten(groupArray(arrayFilter(name -> name != '', arrayMap(
               call -> JSONExtractString(call, 'function', 'name'),
               arrayConcat(JSONExtractArrayRaw(Body, 'message', 'tool_calls'),
                           JSONExtractArrayRaw(Body, 'tool_calls'))))))) AS EventToolNames
    FROM otel_logs
    WHERE TimestampTime >= toDateTime({{start:DateTime64(9)}}) - {_MARGIN_S}
      AND TimestampTime <= toDateTime({{end:DateTime64(9)}}) + {_MARGIN_S}
      AND (EventName = 'gen_ai.choice' OR LogAttributes['event.name'] = 'gen_ai.choice')
      AND SpanId != '' AND position(Body, 'tool_calls') > 0
    GROUP BY TraceId, SpanId"""


def with_event_tools(calls: str, columns: str) -> str:
    """`columns` of the LLM calls `calls` (a FROM item), their ToolNames completed from log events."""
    return f"""(
    SELECT c.* REPLACE (if(notEmpty(c.ToolNames), c.ToolNames, e.EventToolNames) AS ToolNames)
    FROM (SELECT {columns} FROM {calls}) AS c
    LEFT JOIN ({EVENT_TOOL_NAMES}) AS e ON e.TraceId = c.TraceId AND e.SpanId = c.SpanId
)"""
