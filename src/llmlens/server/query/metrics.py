"""Stored OTLP metrics: which exist (name, type, unit) and one metric's points over time."""

from __future__ import annotations

from typing import Any

from llmlens.server.query.window import Window, rfc3339
from llmlens.server.store import Store

TYPES = {
    "gauge": "otel_metrics_gauge",
    "sum": "otel_metrics_sum",
    "histogram": "otel_metrics_histogram",
    "exponential_histogram": "otel_metrics_exponential_histogram",
    "summary": "otel_metrics_summary",
}


async def list_metrics(store: Store, window: Window) -> dict[str, Any]:
    union = " UNION ALL ".join(
        f"SELECT MetricName AS name, '{kind}' AS type, any(MetricUnit) AS unit, any(MetricDescription) AS description, "
        f"count() AS points, groupUniqArray(10)(toString(ServiceName)) AS services FROM {table} "
        "WHERE TimeUnix >= {start:DateTime64(9)} AND TimeUnix <= {end:DateTime64(9)} GROUP BY MetricName"
        for kind, table in TYPES.items()
    )
    rows = await store.fetch(f"SELECT * FROM ({union}) ORDER BY name, type LIMIT 5000", window.params())
    return {"items": [
        {"name": r["name"], "type": r["type"], "unit": r["unit"], "description": r["description"],
         "points": int(r["points"]), "services": sorted(r["services"])}
        for r in rows
    ]}


async def metric_series(store: Store, window: Window, name: str, service: str | None, limit: int) -> dict[str, Any] | None:
    params: dict[str, Any] = {**window.params(), "name": name, "limit": limit}
    service_clause = ""
    if service:
        service_clause = " AND ServiceName = {service:String}"
        params["service"] = service
    where = "MetricName = {name:String} AND TimeUnix >= {start:DateTime64(9)} AND TimeUnix <= {end:DateTime64(9)}"
    for kind, table in TYPES.items():
        if kind in ("gauge", "sum"):
            value = "Value AS value, toUInt64(0) AS count, toFloat64(0) AS sum"
        elif kind == "summary":
            value = "if(Count > 0, Sum / Count, 0) AS value, Count AS count, Sum AS sum"
        else:
            value = "if(Count > 0, Sum / Count, 0) AS value, Count AS count, Sum AS sum"
        rows = await store.fetch(
            f"""SELECT ServiceName AS service, Attributes AS attributes, TimeUnix AS time, MetricUnit AS unit, {value}
                FROM {table} WHERE {where}{service_clause}
                ORDER BY TimeUnix LIMIT {{limit:UInt32}}""",
            params,
        )
        if rows:
            return _series(name, kind, rows)
    return None


def _series(name: str, kind: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    series: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        key = (r["service"], tuple(sorted(r["attributes"].items())))
        entry = series.setdefault(key, {"service": r["service"], "attributes": r["attributes"], "points": []})
        point: dict[str, Any] = {"time": rfc3339(r["time"]), "value": r["value"]}
        if kind not in ("gauge", "sum"):
            point["count"] = int(r["count"])
            point["sum"] = r["sum"]
        entry["points"].append(point)
    return {"name": name, "type": kind, "unit": rows[0]["unit"], "series": list(series.values())}
