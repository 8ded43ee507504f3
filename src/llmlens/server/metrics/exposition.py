"""The Prometheus text format (0.0.4) and OpenMetrics (with exemplars), rendered by prometheus_client
from our series: a collector on a private registry, so nothing of the process's default registry
leaks in, and the encoder chosen from the scraper's Accept header as prometheus_client's own
handlers choose it (OpenMetrics only when asked for: exemplars exist only there)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from llmlens.server.metrics.families import Family
from llmlens.server.metrics.otlp_series import FamilyView, HistogramPoint, Labels, SummaryPoint
from llmlens.server.metrics.registry import FamilySnapshot, HistogramValue

_INF = "+Inf"


def render(families: Iterable[Metric], accept: str | None) -> tuple[bytes, str]:
    """The body and content type for a scraper sending `accept`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(lambda: iter(families)))  # type: ignore[arg-type]
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


class _Collector:
    def __init__(self, produce: Callable[[], Iterator[Metric]]) -> None:
        self._produce = produce

    def collect(self) -> Iterator[Metric]:
        return self._produce()


def registry_families(snapshots: Iterable[FamilySnapshot], *, exemplars: bool = True) -> Iterator[Metric]:
    for snapshot in snapshots:
        yield from _family(snapshot.family, snapshot.series, exemplars)


def _family(family: Family, series: list, exemplars: bool) -> Iterator[Metric]:
    labels = list(family.labels)
    if family.kind == "counter":
        counter = CounterMetricFamily(family.name, family.help, labels=labels)
        for values, value in series:
            counter.add_metric(list(values), value)
        yield counter
    elif family.kind == "gauge":
        gauge = GaugeMetricFamily(family.name, family.help, labels=labels)
        for values, value in series:
            gauge.add_metric(list(values), value)
        yield gauge
    else:
        bounds = [floatToGoString(b) for b in family.buckets] + [_INF]
        histogram = HistogramMetricFamily(family.name, family.help, labels=labels)
        for values, hist in series:
            histogram.add_metric(list(values), _buckets(bounds, hist, exemplars), hist.total)
        yield histogram


def _buckets(bounds: list[str], hist: HistogramValue, exemplars: bool) -> list:
    out: list = []
    running = 0
    for le, n, exemplar in zip(bounds, hist.counts, hist.exemplars, strict=True):
        running += n
        if exemplars and exemplar is not None:
            trace_id, span_id, value = exemplar
            out.append((le, running, Exemplar({"trace_id": trace_id, "span_id": span_id}, value)))
        else:
            out.append((le, running))
    return out


def scalar_families(values: Mapping[Family, float]) -> Iterator[Metric]:
    """Families of one unlabelled value each, read at scrape time."""
    for family, value in values.items():
        kind = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
        yield kind(family.name, family.help, value=value)


def otlp_families(views: Iterable[FamilyView], targets: Iterable[tuple[Labels, Labels]]) -> Iterator[Metric]:
    """The re-exposed OTLP series: label names differ from series to series, so samples are written
    one by one (as the Collector's exporter does)."""
    for view in views:
        base = view.name[:-len("_total")] if view.kind == "counter" and view.name.endswith("_total") else view.name
        metric = Metric(base, view.help or view.name, view.kind)
        for labels, value in view.series:
            _otlp_samples(metric, base, dict(labels), value)
        yield metric
    info = Metric("target_info", "Target metadata", "gauge")
    for identity, rest in targets:
        info.add_sample("target_info", {**dict(rest), **{k: v for k, v in identity if v}}, 1.0)
    if info.samples:
        yield info


def _otlp_samples(metric: Metric, base: str, labels: dict[str, str],
                  value: float | HistogramPoint | SummaryPoint) -> None:
    if isinstance(value, HistogramPoint):
        running = 0
        for bound, n in zip((*value.bounds, None), value.counts, strict=True):
            running += n
            le = _INF if bound is None else floatToGoString(bound)
            metric.add_sample(base + "_bucket", {**labels, "le": le}, float(running))
        metric.add_sample(base + "_count", labels, float(running))
        metric.add_sample(base + "_sum", labels, value.total)
    elif isinstance(value, SummaryPoint):
        for quantile, v in value.quantiles:
            metric.add_sample(base, {**labels, "quantile": floatToGoString(quantile)}, v)
        metric.add_sample(base + "_count", labels, float(value.count))
        metric.add_sample(base + "_sum", labels, value.total)
    elif metric.type == "counter":
        metric.add_sample(base + "_total", labels, float(value))
    else:
        metric.add_sample(base, labels, float(value))
