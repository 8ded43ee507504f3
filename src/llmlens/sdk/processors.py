"""Span processors init() adds to the tracer provider.

- ContextAttributesProcessor: on start, copies llmlens.context() values (W3C baggage, so also
  values that arrived from an upstream service) onto the span.
- LlmMetricsProcessor: on end, derives cost and the LLM metrics from GenAI spans of *any*
  instrumentor (openai-v2, OpenLIT, OpenLLMetry, OpenInference, ...) through the shared
  semconv mapping. The SDK's own spans are skipped: its instrumentation records them directly.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from llmlens import semconv
from llmlens.sdk.context import attributes_from_baggage
from llmlens.sdk.runtime import SCOPE, Runtime


class ContextAttributesProcessor(SpanProcessor):
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        values = baggage.get_all(parent_context)
        if values:
            attrs = attributes_from_baggage(values)
            if attrs:
                span.set_attributes(attrs)

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class LlmMetricsProcessor(SpanProcessor):
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._enabled = True

    def disable(self) -> None:
        """After shutdown(): a provider we do not own keeps this processor, which then does nothing."""
        self._enabled = False

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        scope = span.instrumentation_scope
        scope_name = scope.name if scope is not None else ""
        attributes = span.attributes
        if scope_name == SCOPE or not attributes or not self._enabled:
            return
        try:
            self._record(span, scope_name, attributes)
        except Exception:  # noqa: BLE001 - a malformed foreign span must not break the app
            return

    def _record(self, span: ReadableSpan, scope_name: str, attributes: Any) -> None:
        facts = semconv.extract_llm_facts(
            attributes, span.resource.attributes, span_name=span.name, scope_name=scope_name,
            status_error=not span.status.is_ok, events=span.events, start_time_ns=span.start_time or 0,
        )
        if facts is None or facts.operation not in semconv.MODEL_OPERATIONS:
            return
        rt = self._rt
        cost = facts.cost_usd
        if cost is None and not facts.error_type:
            cost = rt.cost(facts.response_model or facts.request_model, facts.provider, facts.input_tokens,
                           facts.output_tokens, facts.cached_input_tokens, facts.reasoning_tokens)
        duration = ((span.end_time or 0) - (span.start_time or 0)) / 1e9
        rt.metrics.record(
            operation=facts.operation, provider=facts.provider, request_model=facts.request_model,
            response_model=facts.response_model, host=str(attributes.get("server.address", "")),
            port=int(attributes.get("server.port", 0) or 0), error_type=facts.error_type,
            app=facts.app or rt.config.app, department=facts.department or rt.config.department,
            duration_s=max(0.0, duration), input_tokens=facts.input_tokens, output_tokens=facts.output_tokens,
            cost=cost, ttft_s=None if facts.ttft_ms is None else facts.ttft_ms / 1000.0,
        )

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
