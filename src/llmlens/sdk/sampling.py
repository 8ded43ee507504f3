"""Sampling that drops spans from export but not from the metrics.

A trace outside the sampling ratio is RECORD_ONLY instead of DROP: its spans still reach the
span processors (so LLM metrics count every call, whatever instrumentor made the span) but
carry no sampled flag, so the batch exporter leaves them out.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, TraceState, get_current_span
from opentelemetry.util.types import Attributes


class RecordOnlyWhenDropped(Sampler):
    def __init__(self, inner: Sampler) -> None:
        self._inner = inner

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = self._inner.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        if result.decision is Decision.DROP:
            state = get_current_span(parent_context).get_span_context().trace_state
            return SamplingResult(Decision.RECORD_ONLY, None, state)
        return result

    def get_description(self) -> str:
        return f"RecordOnlyWhenDropped{{{self._inner.get_description()}}}"


def llm_sampler(ratio: float) -> Sampler:
    """Parent-based; roots kept at `ratio`; everything not kept is still recorded for metrics."""
    root: Sampler = ALWAYS_ON if ratio >= 1.0 else TraceIdRatioBased(ratio)
    record_only = RecordOnlyWhenDropped(TraceIdRatioBased(0.0))
    return ParentBased(
        root=RecordOnlyWhenDropped(root),
        remote_parent_not_sampled=record_only,
        local_parent_not_sampled=record_only,
    )
