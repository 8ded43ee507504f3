"""The metrics explorer's API over stored OTLP metrics: a metric's attributes, and its series
filtered and grouped by them. The metric is a query parameter: OTel instrument names may hold '/'."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from llmlens.server.api.errors import error_response
from llmlens.server.query import metric_explorer as explorer
from llmlens.server.query.window import parse_window

router = APIRouter(tags=["metrics"])

Name = Annotated[str, Query(description="the metric name", min_length=1, max_length=512)]
Start = Annotated[str | None, Query(description="RFC 3339 or relative like -1h; default -1h", max_length=64)]
End = Annotated[str | None, Query(description="RFC 3339 or relative; default now", max_length=64)]


def _not_found(name: str) -> Any:
    return error_response(404, "not_found", f"no points of metric {name!r} in this time range", "name")


@router.get("/api/v1/metrics/attributes")
async def metric_attributes(request: Request, name: Name, start: Start = None, end: End = None) -> Any:
    """The metric's type and unit, and each attribute key of its points (plus `service`) with up to 50
    of its values and how many there are: the choices of the explorer's filters and group-by."""
    store, window = request.app.state.store, parse_window(start, end, default="-1h")
    metric = await explorer.find_metric(store, window, name)
    if metric is None:
        return _not_found(name)
    return {**metric, "attributes": await explorer.attributes(store, window, metric)}


@router.get("/api/v1/metrics/query")
async def metric_query(
    request: Request,
    name: Name,
    start: Start = None,
    end: End = None,
    step: Annotated[str | None, Query(description="bucket size, e.g. 1m; default from the range", max_length=16)] = None,
    filter: Annotated[list[str] | None, Query(description="key:value on a point attribute or `service`; repeatable",
                                              max_length=20)] = None,
    group_by: Annotated[list[str] | None, Query(description="attribute keys (or `service`) to split lines by; "
                                                            "repeatable or comma-separated", max_length=5)] = None,
    percentile: Annotated[list[str] | None, Query(description="histogram percentiles, e.g. 50,90,99 (default)",
                                                  max_length=10)] = None,
) -> Any:
    """One metric over time per bucket and group: gauges as the mean, sums as the value (and the rate per
    second of a monotonic sum), histograms (explicit and exponential) as percentiles of the bucket
    counts each bucket adds, with count and mean; summaries as mean and count."""
    store, window = request.app.state.store, parse_window(start, end, default="-1h")
    keys = [k.strip() for item in group_by or [] for k in item.split(",") if k.strip()]
    query = explorer.MetricQuery(name=name, step_seconds=window.step_seconds(step),
                                 filters=explorer.parse_pairs(filter, "filter"), group_by=list(dict.fromkeys(keys)),
                                 percentiles=explorer.parse_percentiles(percentile))
    metric = await explorer.find_metric(store, window, name)
    if metric is None:
        return _not_found(name)
    return await explorer.series(store, window, metric, query)
