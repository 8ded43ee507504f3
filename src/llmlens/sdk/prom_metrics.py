"""LLM metrics in the app's own process, for teams that scrape it with Prometheus.

Series (names follow Prometheus conventions: base units, `_total` on counters):
  llm_requests_total{model,status,app}                 status: ok | error
  llm_request_duration_seconds{model}                  histogram, buckets up to ~5 minutes
  llm_tokens_total{model,direction,app}                direction: input | output
  llm_cost_dollars_total{model,department,app}         USD
  llm_errors_total{model,error_type}
  llm_time_to_first_token_seconds{model}               histogram, streaming calls
  llm_quality_score{app,name}                          gauge: last score recorded per name

They live in prometheus_client's default registry, created once per process (re-init keeps
counting), so an app's own metrics and these are served together.
"""

from __future__ import annotations

import threading
from typing import Any

# OTel GenAI duration buckets (0.01 s .. 81.92 s) extended to ~5 minutes for long generations.
LATENCY_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
                   163.84, 327.68)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0)

_lock = threading.Lock()
_metrics: PromLlmMetrics | None = None


class _Bound:
    """The label children one (model, app, department) combination touches on every call."""

    __slots__ = ("ok", "error", "latency", "tokens_in", "tokens_out", "cost", "ttft")

    def __init__(self, m: PromLlmMetrics, model: str, app: str, department: str) -> None:
        self.ok = m.requests.labels(model, "ok", app)
        self.error = m.requests.labels(model, "error", app)
        self.latency = m.latency.labels(model)
        self.tokens_in = m.tokens.labels(model, "input", app)
        self.tokens_out = m.tokens.labels(model, "output", app)
        self.cost = m.cost.labels(model, department, app)
        self.ttft: Any = None  # created on the first streamed call: embeddings never have one


class PromLlmMetrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.requests = Counter("llm_requests", "LLM calls.", ["model", "status", "app"])
        self.latency = Histogram("llm_request_duration_seconds", "LLM call duration.", ["model"],
                                 buckets=LATENCY_BUCKETS)
        self.tokens = Counter("llm_tokens", "Tokens used by LLM calls.", ["model", "direction", "app"])
        self.cost = Counter("llm_cost_dollars", "Cost of LLM calls in US dollars.", ["model", "department", "app"])
        self.errors = Counter("llm_errors", "Failed LLM calls.", ["model", "error_type"])
        self.ttft = Histogram("llm_time_to_first_token_seconds", "Time to first chunk of streamed LLM calls.",
                              ["model"], buckets=TTFT_BUCKETS)
        self.quality = Gauge("llm_quality_score", "Last quality score recorded.", ["app", "name"])
        self._bound: dict[tuple[str, str, str], _Bound] = {}

    def bound(self, model: str, app: str, department: str) -> _Bound:
        key = (model, app, department)
        b = self._bound.get(key)
        if b is None:
            b = self._bound[key] = _Bound(self, model, app, department)
        return b

    def record(self, model: str, app: str, department: str, duration_s: float, input_tokens: int,
               output_tokens: int, cost: float | None, error_type: str, ttft_s: float | None) -> None:
        b = self.bound(model, app, department)
        if error_type:
            b.error.inc()
            self.errors.labels(model, error_type).inc()
        else:
            b.ok.inc()
        b.latency.observe(duration_s)
        if input_tokens:
            b.tokens_in.inc(input_tokens)
        if output_tokens:
            b.tokens_out.inc(output_tokens)
        if cost:
            b.cost.inc(cost)
        if ttft_s is not None:
            if b.ttft is None:
                b.ttft = self.ttft.labels(model)
            b.ttft.observe(ttft_s)

    def record_score(self, app: str, name: str, value: float) -> None:
        self.quality.labels(app, name).set(value)


def prom_metrics() -> PromLlmMetrics:
    """The process's one set of Prometheus LLM metrics."""
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = PromLlmMetrics()
    return _metrics


def start_metrics_server(port: int = 9464, addr: str = "127.0.0.1") -> Any:
    """Serve /metrics (this process's Prometheus registry) on a background thread.

    Listens on loopback unless told otherwise. Returns prometheus_client's (server, thread).
    """
    from prometheus_client import start_http_server

    prom_metrics()
    return start_http_server(port, addr=addr)


def metrics_asgi_app() -> Any:
    """An ASGI app serving the Prometheus exposition, to mount at /metrics."""
    from prometheus_client import make_asgi_app

    prom_metrics()
    return make_asgi_app()
