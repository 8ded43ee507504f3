"""The OTLP metrics apps send, re-exposed for Prometheus on /metrics/otlp as the OTel Collector's
Prometheus exporter would: names translated (otlp_names.py), `job`/`instance` from the resource
(service.namespace/service.name, service.instance.id) plus `otel_scope_name`/`otel_scope_version`
on every series and the rest of the resource on `target_info`; cumulative points shown as sent (the
newest wins), delta sums and histograms added up into cumulative ones, non-monotonic delta sums and
exponential histograms dropped (the text format cannot carry them either way); a series unseen for
the staleness window (5 minutes, the exporter's `metric_expiration`) is dropped.

`derive` translates a batch's stored points where the batch is built; `OtlpMetrics.merge` files them
after the commit (so a resent request, dropped by the writer as a repeat, adds nothing).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from llmlens.server.metrics.otlp_names import label_name, metric_name
from llmlens.server.store.batch import Batch

NAME = "otlp_points"  # batch.derived[NAME]
DELTA = 1  # OTLP AggregationTemporality
_RESOURCE_IDENTITY = ("service.name", "service.namespace", "service.instance.id")

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class HistogramPoint:
    bounds: tuple[float, ...]
    counts: tuple[int, ...]  # per bucket, not cumulative, one more than the bounds
    total: float
    count: int


@dataclass(frozen=True)
class SummaryPoint:
    quantiles: tuple[tuple[float, float], ...]  # (quantile, value)
    total: float
    count: int


@dataclass(frozen=True)
class Point:
    name: str
    kind: str  # counter | gauge | histogram | summary
    help: str
    labels: Labels
    time_ns: int
    delta: bool
    value: float | HistogramPoint | SummaryPoint


@dataclass
class OtlpPoints:
    points: list[Point]
    targets: dict[Labels, Labels]  # (job, instance) labels -> the rest of the resource


def derive(batch: Batch) -> None:
    """The batch's derivation: its metric points in their Prometheus form."""
    out = OtlpPoints([], {})
    for table, reader in _READERS.items():
        arrow = batch.arrow.get(table)
        if arrow is not None and arrow.num_rows:
            reader(arrow, out)
    if out.points:
        batch.derived[NAME] = out


def _rows(arrow: pa.Table, *columns: str) -> Iterator[tuple[Any, ...]]:
    common = ("ResourceAttributes", "ServiceName", "ScopeName", "ScopeVersion", "MetricName", "MetricDescription",
              "MetricUnit", "Attributes")
    times = pc.cast(arrow["TimeUnix"], pa.int64()).to_pylist()
    values = [arrow[c].to_pylist() for c in (*common, *columns)]
    return zip(times, *values, strict=True)


def _identity(resource: list[tuple[str, str]], service: str, out: OtlpPoints) -> Labels:
    attrs = dict(resource)
    namespace = attrs.get("service.namespace", "")
    job = f"{namespace}/{service}" if namespace else service
    identity = (("instance", attrs.get("service.instance.id", "")), ("job", job))
    if identity not in out.targets:
        rest: dict[str, str] = {}
        for key, value in resource:
            if key not in _RESOURCE_IDENTITY:
                _put(rest, label_name(key), value)
        out.targets[identity] = tuple(sorted(rest.items()))
    return identity


def _labels(attributes: list[tuple[str, str]], scope: str, version: str, identity: Labels) -> Labels:
    labels: dict[str, str] = {}
    for key, value in attributes:
        _put(labels, label_name(key), value)
    if scope:
        labels["otel_scope_name"] = scope
    if version:
        labels["otel_scope_version"] = version
    labels.update((k, v) for k, v in identity if v)
    return tuple(sorted(labels.items()))


def _put(labels: dict[str, str], name: str, value: str) -> None:
    """Two attributes with the same Prometheus name: their values joined with ';', as the exporter does."""
    labels[name] = f"{labels[name]};{value}" if name in labels else value


def _gauges(arrow: pa.Table, out: OtlpPoints) -> None:
    for time_ns, resource, service, scope, version, name, help, unit, attrs, value in _rows(arrow, "Value"):
        labels = _labels(attrs, scope, version, _identity(resource, service, out))
        out.points.append(Point(metric_name(name, unit, gauge=True), "gauge", help, labels, time_ns, False, value))


def _sums(arrow: pa.Table, out: OtlpPoints) -> None:
    for (time_ns, resource, service, scope, version, name, help, unit, attrs, value, temporality,
         monotonic) in _rows(arrow, "Value", "AggregationTemporality", "IsMonotonic"):
        delta = temporality == DELTA
        if delta and not monotonic:
            continue  # a change of an up-down counter: nothing to add it to
        labels = _labels(attrs, scope, version, _identity(resource, service, out))
        kind = "counter" if monotonic else "gauge"
        out.points.append(Point(metric_name(name, unit, monotonic_sum=monotonic, gauge=not monotonic), kind, help,
                                labels, time_ns, delta, value))


def _histograms(arrow: pa.Table, out: OtlpPoints) -> None:
    for (time_ns, resource, service, scope, version, name, help, unit, attrs, count, total, counts, bounds,
         temporality) in _rows(arrow, "Count", "Sum", "BucketCounts", "ExplicitBounds", "AggregationTemporality"):
        if len(counts) != len(bounds) + 1:
            continue  # OTLP requires one count more than bounds; anything else cannot be a classic histogram
        labels = _labels(attrs, scope, version, _identity(resource, service, out))
        point = HistogramPoint(tuple(bounds), tuple(counts), total or 0.0, count)
        out.points.append(Point(metric_name(name, unit), "histogram", help, labels, time_ns, temporality == DELTA,
                                point))


def _summaries(arrow: pa.Table, out: OtlpPoints) -> None:
    for (time_ns, resource, service, scope, version, name, help, unit, attrs, count, total, quantiles,
         values) in _rows(arrow, "Count", "Sum", "ValueAtQuantiles.Quantile", "ValueAtQuantiles.Value"):
        labels = _labels(attrs, scope, version, _identity(resource, service, out))
        point = SummaryPoint(tuple(zip(quantiles, values, strict=True)), total, count)
        out.points.append(Point(metric_name(name, unit), "summary", help, labels, time_ns, False, point))


_READERS: dict[str, Callable[[pa.Table, OtlpPoints], None]] = {
    "otel_metrics_gauge": _gauges, "otel_metrics_sum": _sums, "otel_metrics_histogram": _histograms,
    "otel_metrics_summary": _summaries,
}


# --- the series shown ------------------------------------------------------------------------------------

@dataclass
class _Series:
    value: float | HistogramPoint | SummaryPoint
    time_ns: int
    seen: float  # when a point last arrived (monotonic clock)


@dataclass
class _Family:
    kind: str
    help: str
    series: dict[Labels, _Series]


@dataclass(frozen=True)
class FamilyView:
    name: str
    kind: str
    help: str
    series: list[tuple[Labels, float | HistogramPoint | SummaryPoint]]


class OtlpMetrics:
    """The re-exposed series, thread-safe (merged on the writer thread, read by scrapes)."""

    def __init__(self, *, max_series: int, staleness_s: float = 300.0,
                 on_overflow: Callable[[str, int], None] = lambda name, n: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._max_series = max_series
        self._staleness = staleness_s
        self._on_overflow = on_overflow
        self._clock = clock
        self._families: dict[str, _Family] = {}
        self._targets: dict[Labels, tuple[Labels, float]] = {}
        self._lock = threading.Lock()

    def merge(self, points: OtlpPoints) -> None:
        dropped: dict[str, int] = {}
        with self._lock:
            now = self._clock()
            for identity, rest in points.targets.items():
                self._targets[identity] = (rest, now)
            for point in points.points:
                family = self._families.get(point.name)
                if family is None:
                    family = self._families[point.name] = _Family(point.kind, point.help, {})
                elif family.kind != point.kind:
                    continue  # two metrics of different types under one name: the first keeps it
                if not self._file(family, point, now):
                    dropped[point.name] = dropped.get(point.name, 0) + 1
        for name, n in dropped.items():
            self._on_overflow(name, n)

    def _file(self, family: _Family, point: Point, now: float) -> bool:
        have = family.series.get(point.labels)
        if have is None:
            if len(family.series) >= self._max_series:
                return False  # label values of an OTLP family are open-ended: past the cap they are dropped
            family.series[point.labels] = _Series(point.value, point.time_ns, now)
            return True
        have.seen = now
        if point.delta:
            have.value = _accumulate(have.value, point.value)
            have.time_ns = max(have.time_ns, point.time_ns)
        elif point.time_ns >= have.time_ns:
            have.value, have.time_ns = point.value, point.time_ns
        return True

    def snapshot(self) -> tuple[list[FamilyView], list[tuple[Labels, Labels]]]:
        """The live families and targets (stale series dropped here, at read time, and for good)."""
        with self._lock:
            horizon = self._clock() - self._staleness
            views = []
            for name, family in list(self._families.items()):
                for labels in [k for k, s in family.series.items() if s.seen < horizon]:
                    del family.series[labels]
                if not family.series:
                    del self._families[name]
                    continue
                views.append(FamilyView(name, family.kind, family.help,
                                        [(labels, s.value) for labels, s in family.series.items()]))
            for identity in [k for k, (_, seen) in self._targets.items() if seen < horizon]:
                del self._targets[identity]
            targets = [(identity, rest) for identity, (rest, _) in self._targets.items()]
            return views, targets


def _accumulate(have: float | HistogramPoint | SummaryPoint,
                delta: float | HistogramPoint | SummaryPoint) -> float | HistogramPoint | SummaryPoint:
    if isinstance(have, float | int) and isinstance(delta, float | int):
        return have + delta
    if isinstance(have, HistogramPoint) and isinstance(delta, HistogramPoint) and have.bounds == delta.bounds:
        return HistogramPoint(have.bounds, tuple(a + b for a, b in zip(have.counts, delta.counts, strict=True)),
                              have.total + delta.total, have.count + delta.count)
    return delta  # the buckets changed: start again from this point
