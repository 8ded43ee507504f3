"""What the trace view adds to each LLM call from the rest of its trace (read at query time).

- Tool calls (names and arguments) read from the call's span, whatever convention wrote them, else
  from its `gen_ai.choice` log events (openai-v2); their names become the call's tool_names too.
- Prompt and response carried by events when the span holds none: openai-v2's log events (its default
  conventions version), OpenLIT's span events.
- Session, user, app and department inherited from the nearest ancestor span, else the trace's root
  (semconv.inherited_context), over the whole trace: spans exported in different requests are joined
  here; the normaliser already did it for spans that arrived together.
"""

from __future__ import annotations

from typing import Any

from llmlens import semconv
from llmlens.server.store import Store

_HOUR_NS = 3_600_000_000_000
# Log events of the trace that may carry a call's messages (a gen_ai.* event name).
EVENTS_SQL = """
    SELECT SpanId AS span_id, EventName AS event_name, Body AS body, LogAttributes AS attributes
    FROM otel_logs
    WHERE TimestampTime >= toDateTime(fromUnixTimestamp64Nano({start_ns:Int64})) - 1
      AND TimestampTime <= toDateTime(fromUnixTimestamp64Nano({end_ns:Int64})) + 1
      AND TraceId = {trace_id:String} AND SpanId != ''
      AND (startsWith(EventName, 'gen_ai.') OR startsWith(LogAttributes['event.name'], 'gen_ai.'))
    ORDER BY Timestamp
    LIMIT 5000
"""
_FIELDS = {"app": "app", "department": "department", "user_id": "user_id", "session_id": "session_id"}


async def log_events(store: Store, trace_id: str, first_ns: int, last_ns: int) -> dict[str, list[tuple]]:
    """span id -> (event name, body, attributes) of the gen_ai.* log events of a trace, in time order.
    An hour either side of the spans: log records are written by another pipeline than spans."""
    rows = await store.fetch(EVENTS_SQL, {"trace_id": trace_id, "start_ns": first_ns - _HOUR_NS,
                                          "end_ns": last_ns + _HOUR_NS})
    found: dict[str, list[tuple]] = {}
    for row in rows:
        found.setdefault(row["span_id"], []).append((row["event_name"], row["body"], row["attributes"]))
    return found


def complete_calls(spans: list[dict[str, Any]], events: dict[str, list[tuple]]) -> None:
    """Add tool calls, event-borne content and inherited context to the `llm` facts of `spans`."""
    parents = {span["span_id"]: span["parent_span_id"] or "" for span in spans}
    context = {}
    for span in spans:
        own = semconv.context_facts(span["attributes"])
        if own:
            context[span["span_id"]] = own
    known = set(parents)
    roots = [span["span_id"] for span in spans if not span["parent_span_id"] or span["parent_span_id"] not in known]
    root = roots[0] if len(roots) == 1 else next((s["span_id"] for s in spans if not s["parent_span_id"]), None)
    for span in spans:
        llm = span["llm"]
        if llm is None:
            continue
        calls = semconv.tool_calls(span["attributes"])
        span_events = [(e["name"], "", e["attributes"]) for e in span["events"]] + events.get(span["span_id"], [])
        if span_events:
            text_in, text_out, event_calls = semconv.event_content(span_events)
            llm["input"] = llm["input"] or text_in or None
            llm["output"] = llm["output"] or text_out or None
            calls = calls or event_calls
        llm["tool_calls"] = [{"name": name, "arguments": arguments or None} for name, arguments in calls]
        if not llm["tool_names"] and calls:  # openai-v2 names them in a log event only (query/event_tools.py)
            llm["tool_names"] = list(dict.fromkeys(name for name, _ in calls))
        if context and not all(llm[field] for field in _FIELDS.values()):
            inherited = semconv.inherited_context(parents, context, span["span_id"], root)
            llm["inherited"] = sorted(name for name in _FIELDS if not llm[name] and inherited.get(name))
            for name in llm["inherited"]:
                llm[name] = inherited[name]
        else:
            llm["inherited"] = []
