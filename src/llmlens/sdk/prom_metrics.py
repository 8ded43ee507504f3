"""LLM metrics in the app's own process, for teams that scrape it with Prometheus.

Series (Prometheus conventions: base units, `_total` on counters):
  llm_requests_total{model,status,app}                 status: ok | error
  llm_request_duration_seconds{model}                  histogram, buckets up to ~5 minutes
  llm_tokens_total{model,direction,app}                direction: input | output
  llm_cost_dollars_total{model,department,app}         USD
  llm_unpriced_requests_total{model}                   successful calls whose model has no price
  llm_errors_total{model,error_type}
  llm_time_to_first_token_seconds{model}               histogram, streamed calls
  llm_quality_score{app,name}                          gauge: the last score recorded per name
  llmlens_sdk_internal_errors_total                    the SDK's own hooks that raised (see guard.py)

`model` is the requested model (every call has one, failed calls included). The values are
projections of `aggregates.Aggregates`, computed at scrape time by a collector registered once
in prometheus_client's default registry, so an app's own metrics are served alongside.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from llmlens.sdk.aggregates import DURATION_BUCKETS, TTFT_BUCKETS, Histogram, aggregates
from llmlens.sdk.guard import internal_errors

_lock = threading.Lock()
_registered = False


def _buckets(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    out, running = [], 0
    for bound, n in zip((*bounds, float("inf")), counts, strict=True):
        running += n
        out.append(("+Inf" if bound == float("inf") else repr(float(bound)), float(running)))
    return out


class LlmCollector:
    """prometheus_client collector over the shared LLM aggregates."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        series, scores = aggregates().snapshot()
        requests: dict[tuple[str, ...], float] = defaultdict(float)
        tokens: dict[tuple[str, ...], float] = defaultdict(float)
        cost: dict[tuple[str, ...], float] = defaultdict(float)
        unpriced: dict[str, float] = defaultdict(float)
        errors: dict[tuple[str, ...], float] = defaultdict(float)
        latency: dict[str, Histogram] = {}
        ttft: dict[str, Histogram] = {}
        for key, s in series:
            _op, _provider, request_model, response_model, _host, _port, error_type, app, department = key
            model = request_model or response_model
            requests[(model, "error" if error_type else "ok", app)] += s.requests
            if error_type:
                errors[(model, error_type)] += s.requests
            tokens[(model, "input", app)] += s.input_tokens
            tokens[(model, "output", app)] += s.output_tokens
            if s.cost:
                cost[(model, department, app)] += s.cost
            if s.unpriced:
                unpriced[model] += s.unpriced
            _merge(latency, model, s.duration)
            if s.ttft is not None:
                _merge(ttft, model, s.ttft)

        family = CounterMetricFamily("llm_requests", "LLM calls.", labels=["model", "status", "app"])
        for labels, value in requests.items():
            family.add_metric(list(labels), value)
        yield family
        family = HistogramMetricFamily("llm_request_duration_seconds", "LLM call duration.", labels=["model"])
        for model, h in latency.items():
            family.add_metric([model], _buckets(DURATION_BUCKETS, h.counts), h.sum)
        yield family
        family = CounterMetricFamily("llm_tokens", "Tokens used by LLM calls.", labels=["model", "direction", "app"])
        for labels, value in tokens.items():
            family.add_metric(list(labels), value)
        yield family
        family = CounterMetricFamily("llm_cost_dollars", "Cost of LLM calls in US dollars.",
                                     labels=["model", "department", "app"])
        for labels, value in cost.items():
            family.add_metric(list(labels), value)
        yield family
        family = CounterMetricFamily("llm_unpriced_requests", "Successful LLM calls whose model has no price "
                                     "(their cost is missing from llm_cost_dollars_total).", labels=["model"])
        for model, value in unpriced.items():
            family.add_metric([model], value)
        yield family
        family = CounterMetricFamily("llm_errors", "Failed LLM calls.", labels=["model", "error_type"])
        for labels, value in errors.items():
            family.add_metric(list(labels), value)
        yield family
        family = HistogramMetricFamily("llm_time_to_first_token_seconds",
                                       "Time to the first chunk of streamed LLM calls.", labels=["model"])
        for model, h in ttft.items():
            family.add_metric([model], _buckets(TTFT_BUCKETS, h.counts), h.sum)
        yield family
        family = GaugeMetricFamily("llm_quality_score", "Last quality score recorded.", labels=["app", "name"])
        for (app, name), value in scores.items():
            family.add_metric([app, name], value)
        yield family
        yield CounterMetricFamily("llmlens_sdk_internal_errors", "Errors inside llmlens's instrumentation hooks "
                                  "(the app's calls were unaffected; their telemetry is incomplete).",
                                  value=internal_errors())


def _merge(into: dict[str, Histogram], model: str, h: Histogram) -> None:
    have = into.get(model)
    if have is None:
        into[model] = h
    else:
        have.counts = have.merged_counts(h)
        have.sum += h.sum


def register_collector() -> None:
    """Add the LLM collector to prometheus_client's default registry, once per process."""
    global _registered
    if _registered:
        return
    with _lock:
        if not _registered:
            from prometheus_client import REGISTRY

            REGISTRY.register(LlmCollector())
            _registered = True


def start_metrics_server(port: int = 9464, addr: str = "127.0.0.1") -> Any:
    """Serve /metrics (prometheus_client's default registry) on a background thread.

    Listens on loopback unless told otherwise. Returns prometheus_client's (server, thread).
    """
    from prometheus_client import start_http_server

    register_collector()
    return start_http_server(port, addr=addr)


def metrics_asgi_app() -> Any:
    """An ASGI app serving the Prometheus exposition, to mount at /metrics."""
    from prometheus_client import make_asgi_app

    register_collector()
    return make_asgi_app()
