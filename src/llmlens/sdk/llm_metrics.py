"""One call records an LLM operation for both metric views (Prometheus and OTLP)."""

from __future__ import annotations

from llmlens.sdk.aggregates import Aggregates


class LlmMetrics:
    def __init__(self, agg: Aggregates) -> None:
        self._agg = agg

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
        key = (operation, provider, request_model, response_model, host, port, error_type, app, department)
        # A failed call is not priced by design; a successful one without a cost is unpriced.
        self._agg.record(key, duration_s, input_tokens, output_tokens, cost, ttft_s,
                         unpriced=cost is None and not error_type)

    def record_score(self, name: str, value: float, app: str) -> None:
        self._agg.record_score(app, name, value)
