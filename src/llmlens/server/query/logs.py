"""Log search: time range, service, minimum severity, text contains, trace id; newest first, a page at a time."""

from __future__ import annotations

from typing import Any

from llmlens.server.errors import BadParameter
from llmlens.server.query import keyset
from llmlens.server.query.window import Window, rfc3339
from llmlens.server.store import Store

# Orders lines of one nanosecond (a log line has no id): lines equal in all of these are one to paging.
_ROW_KEY = "sipHash64(ServiceName, Body, TraceId, SpanId, SeverityNumber)"
SEVERITIES = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "warning": 13, "error": 17, "fatal": 21}


def severity_number(value: str) -> int:
    lowered = value.strip().lower()
    if lowered in SEVERITIES:
        return SEVERITIES[lowered]
    if lowered.isdigit() and 1 <= int(lowered) <= 24:
        return int(lowered)
    raise BadParameter("severity", f"severity must be one of {', '.join(SEVERITIES)} or 1-24, got {value[:40]!r}")


async def search_logs(store: Store, window: Window, *, service: str | None = None, severity: str | None = None,
                      text: str | None = None, trace_id: str | None = None, limit: int = 100,
                      cursor: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {**window.params(), "limit": limit + 1}
    where = ["TimestampTime >= toDateTime({start:DateTime64(9)}) - 1", "Timestamp >= {start:DateTime64(9)}",
             "Timestamp <= {end:DateTime64(9)}"]
    if service:
        where.append("ServiceName = {service:String}")
        params["service"] = service
    if severity:
        where.append("SeverityNumber >= {severity:UInt8}")
        params["severity"] = severity_number(severity)
    if text:
        where.append("positionCaseInsensitiveUTF8(Body, {text:String}) > 0")
        params["text"] = text
    if trace_id:
        where.append("TraceId = {trace_id:String}")
        params["trace_id"] = trace_id
    if cursor is not None:
        params["c_time"], params["c_key"] = keyset.decode(cursor, "time", "uint")
        where.append(f"(Timestamp, {_ROW_KEY}) < ({{c_time:DateTime64(9)}}, {{c_key:UInt64}})")
    rows = await store.fetch(
        f"""SELECT Timestamp, toString(Timestamp) AS time_key, {_ROW_KEY} AS row_key, TraceId, SpanId,
                   SeverityText, SeverityNumber, ServiceName, Body, LogAttributes, ResourceAttributes,
                   EventName, ScopeName
            FROM otel_logs WHERE {" AND ".join(where)}
            ORDER BY Timestamp DESC, row_key DESC LIMIT {{limit:UInt32}}""",
        params,
    )
    rows, more = rows[:limit], len(rows) > limit
    next_cursor = keyset.encode(rows[-1]["time_key"], str(rows[-1]["row_key"])) if more else None
    items = [
        {
            "time": rfc3339(r["Timestamp"]),
            "trace_id": r["TraceId"] or None,
            "span_id": r["SpanId"] or None,
            "severity": r["SeverityText"] or None,
            "severity_number": int(r["SeverityNumber"]),
            "service": r["ServiceName"],
            "body": r["Body"],
            "event_name": r["EventName"] or None,
            "scope": r["ScopeName"] or None,
            "attributes": r["LogAttributes"],
            "resource": r["ResourceAttributes"],
        }
        for r in rows
    ]
    return {"items": items, "next_cursor": next_cursor}
