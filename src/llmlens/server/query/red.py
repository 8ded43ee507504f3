"""RED metrics from stored spans: rate, errors and duration per service, span name and span kind.

The same cut as Tempo's span metrics (`traces_spanmetrics_calls_total` and
`traces_spanmetrics_latency` by service, span_name, span_kind), computed from `otel_traces` for any
time range. Only typed columns are read (never the attribute Maps), and the table is sorted by
service and span name, so a day of a large store stays interactive.
"""

from __future__ import annotations

import math
from typing import Any

from llmlens.server.errors import BadParameter
from llmlens.server.query.window import Window, rfc3339
from llmlens.server.store import Store

# API name -> the stored SpanKind (normalise/traces.py writes these).
SPAN_KINDS = {"server": "Server", "client": "Client", "internal": "Internal", "producer": "Producer",
              "consumer": "Consumer", "unspecified": "Unspecified"}
MAX_ROWS = 5000

_SQL = """
SELECT ServiceName AS service, SpanName AS span_name, SpanKind AS span_kind,
       count() AS requests,
       countIf(StatusCode = 'Error') AS errors,
       quantiles(0.5, 0.9, 0.99)(Duration / 1e6) AS duration_ms
FROM otel_traces
WHERE {where}
GROUP BY service, span_name, span_kind
ORDER BY requests DESC, service, span_name, span_kind
LIMIT {{limit:UInt32}}
"""


def parse_kinds(kinds: list[str] | None) -> list[str]:
    """API kind names (server, client, ...) -> stored SpanKind values; an empty list means every kind."""
    stored = []
    for kind in kinds or []:
        for name in kind.split(","):
            name = name.strip().lower()
            if name not in SPAN_KINDS:
                raise BadParameter("kind", f"unknown span kind {name!r}; choose from {', '.join(SPAN_KINDS)}")
            stored.append(SPAN_KINDS[name])
    return list(dict.fromkeys(stored))


async def red_metrics(store: Store, window: Window, *, service: str | None = None, span_name: str | None = None,
                      kinds: list[str] | None = None, limit: int = 500) -> dict[str, Any]:
    """Rows of {service, span_name, span_kind, requests, rate, errors, error_rate, p50/p90/p99_ms},
    busiest first; `kinds` are stored SpanKind values (see parse_kinds)."""
    if not 1 <= limit <= MAX_ROWS:
        raise BadParameter("limit", f"limit must be between 1 and {MAX_ROWS}")
    params: dict[str, Any] = {**window.params(), "limit": limit + 1}
    where = ["Timestamp >= {start:DateTime64(9)}", "Timestamp < {end:DateTime64(9)}"]
    if service:
        where.append("ServiceName = {service:String}")
        params["service"] = service
    if span_name:
        where.append("SpanName = {span_name:String}")
        params["span_name"] = span_name
    if kinds:
        where.append("SpanKind IN {kinds:Array(String)}")
        params["kinds"] = kinds
    rows = await store.fetch(_SQL.format(where=" AND ".join(where)), params)
    seconds = window.seconds
    return {
        "start": rfc3339(params["start"]),
        "end": rfc3339(params["end"]),
        "window_seconds": seconds,
        "rows": [_row(row, seconds) for row in rows[:limit]],
        "truncated": len(rows) > limit,
    }


def _row(row: dict[str, Any], seconds: float) -> dict[str, Any]:
    requests, errors = int(row["requests"]), int(row["errors"])
    p50, p90, p99 = (list(row["duration_ms"] or []) + [None, None, None])[:3]
    return {
        "service": row["service"],
        "span_name": row["span_name"],
        "span_kind": str(row["span_kind"]).lower(),
        "requests": requests,
        "rate": requests / seconds if seconds > 0 else None,
        "errors": errors,
        "error_rate": errors / requests if requests else 0.0,
        "p50_ms": _ms(p50),
        "p90_ms": _ms(p90),
        "p99_ms": _ms(p99),
    }


def _ms(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) or math.isinf(number) else round(number, 3)
