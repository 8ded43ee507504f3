"""The LLM aggregates as OpenTelemetry GenAI metrics, exported over OTLP on a background thread.

  gen_ai.client.operation.duration             histogram, s        (error.type on failures)
  gen_ai.client.token.usage                    histogram, {token}  gen_ai.token.type = input | output
  gen_ai.client.operation.time_to_first_chunk  histogram, s        streamed calls
  llmlens.client.cost                          counter (sum), USD
  llmlens.quality.score                        gauge

Cumulative temporality since process start. Exported every interval and once more on
shutdown; the caller's thread never waits on this.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from opentelemetry import context as otel_context

from llmlens import __version__, semconv
from llmlens.sdk.aggregates import DURATION_BUCKETS, TOKEN_BUCKETS, TTFT_BUCKETS, Aggregates, Histogram, Key


def _attributes(key: Key) -> dict[str, Any]:
    operation, provider, request_model, response_model, host, port, error_type, app, department = key
    attrs: dict[str, Any] = {semconv.OPERATION: operation, semconv.PROVIDER: provider}
    for name, value in ((semconv.REQUEST_MODEL, request_model), (semconv.RESPONSE_MODEL, response_model),
                        ("server.address", host), ("server.port", port), (semconv.ERROR_TYPE, error_type),
                        (semconv.LLMLENS_APP, app), (semconv.LLMLENS_DEPARTMENT, department)):
        if value:
            attrs[name] = value
    return attrs


def build_metrics_data(agg: Aggregates, resource: Any) -> Any:
    """An OTel SDK `MetricsData` of the aggregates, ready for any OTLP metric exporter."""
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        Gauge,
        HistogramDataPoint,
        Metric,
        MetricsData,
        NumberDataPoint,
        ResourceMetrics,
        ScopeMetrics,
        Sum,
    )
    from opentelemetry.sdk.metrics.export import Histogram as OtelHistogram
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    series, scores = agg.snapshot()
    start, now = agg.start_time_ns, time.time_ns()
    cumulative = AggregationTemporality.CUMULATIVE

    def point(attrs: dict[str, Any], h: Histogram, bounds: tuple[float, ...]) -> Any:
        return HistogramDataPoint(attributes=attrs, start_time_unix_nano=start, time_unix_nano=now, count=h.count,
                                  sum=h.sum, bucket_counts=list(h.counts), explicit_bounds=list(bounds),
                                  min=h.min if h.count else 0.0, max=h.max if h.count else 0.0)

    duration, tokens, ttft, cost = [], [], [], []
    for key, s in series:
        attrs = _attributes(key)
        duration.append(point(attrs, s.duration, DURATION_BUCKETS))
        if s.input_hist is not None:
            tokens.append(point({**attrs, "gen_ai.token.type": "input"}, s.input_hist, TOKEN_BUCKETS))
        if s.output_hist is not None:
            tokens.append(point({**attrs, "gen_ai.token.type": "output"}, s.output_hist, TOKEN_BUCKETS))
        if s.ttft is not None:
            ttft.append(point(attrs, s.ttft, TTFT_BUCKETS))
        if s.cost:
            cost.append(NumberDataPoint(attributes=attrs, start_time_unix_nano=start, time_unix_nano=now,
                                        value=s.cost))
    metrics = []
    for name, unit, description, points in (
        ("gen_ai.client.operation.duration", "s", "GenAI operation duration.", duration),
        ("gen_ai.client.token.usage", "{token}", "Tokens used per GenAI operation.", tokens),
        ("gen_ai.client.operation.time_to_first_chunk", "s", "Time to the first chunk of a streamed response.",
         ttft),
    ):
        if points:
            metrics.append(Metric(name=name, description=description, unit=unit,
                                  data=OtelHistogram(data_points=points, aggregation_temporality=cumulative)))
    if cost:
        metrics.append(Metric(name="llmlens.client.cost", description="Cost of GenAI operations.", unit="USD",
                              data=Sum(data_points=cost, aggregation_temporality=cumulative, is_monotonic=True)))
    if scores:
        gauge_points = [
            NumberDataPoint(attributes={semconv.EVALUATION_NAME: name, **({semconv.LLMLENS_APP: app} if app else {})},
                            start_time_unix_nano=start, time_unix_nano=now, value=value)
            for (app, name), value in scores.items()
        ]
        metrics.append(Metric(name="llmlens.quality.score", description="Last quality score recorded.", unit="1",
                              data=Gauge(data_points=gauge_points)))
    scope = InstrumentationScope("llmlens", __version__)
    return MetricsData(resource_metrics=[ResourceMetrics(
        resource=resource, scope_metrics=[ScopeMetrics(scope=scope, metrics=metrics, schema_url="")], schema_url="",
    )]), bool(metrics)


class OtlpMetricsExporter:
    """Exports the aggregates every `interval_ms` on a daemon thread, and once more on shutdown()."""

    def __init__(self, agg: Aggregates, exporter: Any, resource: Any, interval_ms: int) -> None:
        self._agg = agg
        self._exporter = exporter
        self._resource = resource
        self._interval_s = interval_ms / 1000.0
        self._stop = threading.Event()
        self._export_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="llmlens-metrics-export", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.export()

    def export(self) -> None:
        # The exporter's HTTP request is not the app's work: the HTTP instrumentations must not trace it
        # (each export would be a root "POST" span), as OTel's own readers and span processors ensure.
        token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            with self._export_lock:
                data, has_points = build_metrics_data(self._agg, self._resource)
                if has_points:
                    self._exporter.export(data)
        except Exception:  # noqa: BLE001 - a failed export is dropped; the exporter logged it
            pass
        finally:
            otel_context.detach(token)

    def shutdown(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.export()
        with contextlib.suppress(Exception):
            self._exporter.shutdown()
