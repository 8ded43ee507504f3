"""One call records an LLM operation into both metric pipelines (Prometheus and OTLP)."""

from __future__ import annotations

from llmlens.sdk.otel_metrics import OtelLlmMetrics
from llmlens.sdk.prom_metrics import PromLlmMetrics


class LlmMetrics:
    def __init__(self, prom: PromLlmMetrics | None, otel: OtelLlmMetrics | None) -> None:
        self.prom = prom
        self.otel = otel

    def record(
        self,
        *,
        operation: str,
        provider: str,
        request_model: str,
        response_model: str,
        host: str,
        port: int,
        error_type: str,
        app: str,
        department: str,
        duration_s: float,
        input_tokens: int,
        output_tokens: int,
        cost: float | None,
        ttft_s: float | None,
    ) -> None:
        # Prometheus keys series on the requested model: the one label every call (failed ones too) has.
        if self.prom is not None:
            self.prom.record(request_model or response_model, app, department, duration_s, input_tokens,
                             output_tokens, cost, error_type, ttft_s)
        if self.otel is not None:
            key = (operation, provider, request_model, response_model, host, port, error_type, app, department)
            self.otel.record(key, duration_s, input_tokens, output_tokens, cost, ttft_s)

    def record_score(self, name: str, value: float, app: str) -> None:
        if self.prom is not None:
            self.prom.record_score(app, name, value)
        if self.otel is not None:
            self.otel.record_score(name, value, app)
