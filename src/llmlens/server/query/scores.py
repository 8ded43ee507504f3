"""Quality scores tied to traces."""

from __future__ import annotations

from typing import Any

from llmlens.server.query.window import Window, rfc3339
from llmlens.server.store import Store

_COLUMNS = "Timestamp, TraceId, SpanId, ServiceName, App, Name, Value, Label, Comment, Source"


def _item(r: dict[str, Any]) -> dict[str, Any]:
    return {"time": rfc3339(r["Timestamp"]), "trace_id": r["TraceId"], "span_id": r["SpanId"] or None,
            "service": r["ServiceName"], "app": r["App"] or None, "name": r["Name"], "value": r["Value"],
            "label": r["Label"] or None, "comment": r["Comment"] or None, "source": r["Source"]}


async def scores_for_trace(store: Store, trace_id: str) -> list[dict[str, Any]]:
    rows = await store.fetch(f"SELECT {_COLUMNS} FROM llm_scores WHERE TraceId = {{t:String}} ORDER BY Timestamp",
                             {"t": trace_id})
    return [_item(r) for r in rows]


async def list_scores(store: Store, window: Window, *, trace_id: str | None, name: str | None,
                      limit: int) -> dict[str, Any]:
    params: dict[str, Any] = {**window.params(), "limit": limit}
    where = ["Timestamp >= {start:DateTime64(9)}", "Timestamp <= {end:DateTime64(9)}"]
    if trace_id:
        where.append("TraceId = {trace_id:String}")
        params["trace_id"] = trace_id
    if name:
        where.append("Name = {name:String}")
        params["name"] = name
    rows = await store.fetch(
        f"SELECT {_COLUMNS} FROM llm_scores WHERE {' AND '.join(where)} ORDER BY Timestamp DESC LIMIT {{limit:UInt32}}",
        params)
    return {"items": [_item(r) for r in rows]}
