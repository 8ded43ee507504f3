"""OTLP metrics -> otel_metrics_{gauge,sum,histogram,exponential_histogram,summary} rows."""

from __future__ import annotations

from typing import Any

from llmlens.server.decode.attributes import key_values
from llmlens.server.normalise.cost import CostModel
from llmlens.server.normalise.masking import mask_batch
from llmlens.server.normalise.time_window import Bounds
from llmlens.server.store.batch import Batch


def normalise_metrics(request: Any, cost: CostModel) -> Batch:
    """Rows from a parsed ExportMetricsServiceRequest; of `cost`, only its mask and time window apply."""
    batch = Batch()
    bounds = cost.window.now() if cost.window is not None else None
    for resource_metrics in request.resource_metrics:
        resource = key_values(resource_metrics.resource.attributes)
        service = resource.get("service.name") or "unknown_service"
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope
            scope_attrs = key_values(scope.attributes)
            common = {
                "ResourceAttributes": resource,
                "ResourceSchemaUrl": resource_metrics.schema_url,
                "ScopeName": scope.name,
                "ScopeVersion": scope.version,
                "ScopeAttributes": scope_attrs,
                "ScopeDroppedAttrCount": scope.dropped_attributes_count,
                "ScopeSchemaUrl": scope_metrics.schema_url,
                "ServiceName": service,
            }
            for metric in scope_metrics.metrics:
                _add_metric(batch, metric, common, bounds)
    if cost.mask is not None:
        mask_batch(batch, cost.mask)
    return batch


def _add_metric(batch: Batch, metric: Any, common: dict[str, Any], bounds: Bounds | None) -> None:
    kind = metric.WhichOneof("data")
    head = {**common, "MetricName": metric.name, "MetricDescription": metric.description, "MetricUnit": metric.unit}
    if kind == "gauge":
        for point in metric.gauge.data_points:
            _point(batch, "otel_metrics_gauge", head, point, bounds, {"Value": _number(point)})
    elif kind == "sum":
        extra = {"AggregationTemporality": metric.sum.aggregation_temporality, "IsMonotonic": metric.sum.is_monotonic}
        for point in metric.sum.data_points:
            _point(batch, "otel_metrics_sum", head, point, bounds, {"Value": _number(point), **extra})
    elif kind == "histogram":
        temporality = metric.histogram.aggregation_temporality
        for p in metric.histogram.data_points:
            _point(batch, "otel_metrics_histogram", head, p, bounds, {
                "Count": p.count, "Sum": p.sum, "BucketCounts": list(p.bucket_counts),
                "ExplicitBounds": list(p.explicit_bounds), "Min": p.min, "Max": p.max,
                "AggregationTemporality": temporality,
            })
    elif kind == "exponential_histogram":
        temporality = metric.exponential_histogram.aggregation_temporality
        for p in metric.exponential_histogram.data_points:
            _point(batch, "otel_metrics_exponential_histogram", head, p, bounds, {
                "Count": p.count, "Sum": p.sum, "Scale": p.scale, "ZeroCount": p.zero_count,
                "PositiveOffset": p.positive.offset, "PositiveBucketCounts": list(p.positive.bucket_counts),
                "NegativeOffset": p.negative.offset, "NegativeBucketCounts": list(p.negative.bucket_counts),
                "Min": p.min, "Max": p.max, "AggregationTemporality": temporality,
            })
    elif kind == "summary":
        for p in metric.summary.data_points:
            _point(batch, "otel_metrics_summary", head, p, bounds, {
                "Count": p.count, "Sum": p.sum,
                "ValueAtQuantiles.Quantile": [q.quantile for q in p.quantile_values],
                "ValueAtQuantiles.Value": [q.value for q in p.quantile_values],
            })
    else:
        batch.reject(f"metric {metric.name[:80]!r} has no data")


def _point(batch: Batch, table: str, head: dict[str, Any], point: Any, bounds: Bounds | None,
           values: dict[str, Any]) -> None:
    if not point.time_unix_nano:
        batch.reject(f"metric {head['MetricName'][:80]!r}: data point without time_unix_nano")
        return
    if bounds is not None:
        what = f"metric {head['MetricName'][:80]!r}"
        problem = bounds.check(point.time_unix_nano, f"{what}: data point time")
        # A cumulative series may have started long before the retention, never after now.
        if not problem and point.start_time_unix_nano > bounds.latest:
            problem = bounds.check(point.start_time_unix_nano, f"{what}: start time")
        if problem:
            batch.reject(problem)
            return
    cols = batch.columns(table)
    attrs = key_values(point.attributes)
    row = {**head, "Attributes": attrs, "StartTimeUnix": point.start_time_unix_nano,
           "TimeUnix": point.time_unix_nano, "Flags": point.flags, **values}
    if table != "otel_metrics_summary":
        exemplars = list(point.exemplars)
        row["Exemplars.FilteredAttributes"] = [key_values(e.filtered_attributes) for e in exemplars]
        row["Exemplars.TimeUnix"] = [e.time_unix_nano for e in exemplars]
        row["Exemplars.Value"] = [_number(e) for e in exemplars]
        row["Exemplars.SpanId"] = [e.span_id.hex() for e in exemplars]
        row["Exemplars.TraceId"] = [e.trace_id.hex() for e in exemplars]
    for name, column in cols.items():
        column.append(row[name])
    batch.accepted += 1


def _number(point: Any) -> float:
    return float(point.as_int) if point.WhichOneof("value") == "as_int" else point.as_double
