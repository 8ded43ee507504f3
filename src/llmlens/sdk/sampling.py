"""Sampling that drops spans from export but not from the metrics.

A trace outside the sampling ratio is RECORD_ONLY instead of DROP: its spans still reach the
span processors (so LLM metrics count every call, whatever instrumentor made the span) but
carry no sampled flag, so the batch exporter leaves them out.

The decision is OTel's ParentBased(TraceIdRatioBased(ratio)) with DROP turned into
RECORD_ONLY, written as one sampler: it runs on every span start, and the composed samplers
cost three calls and two results per span.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind, TraceState, get_current_span
from opentelemetry.util.types import Attributes


class LlmSampler(Sampler):
    """Children follow their parent's sampled flag; roots are kept at `ratio` by trace id."""

    def __init__(self, ratio: float) -> None:
        self._ratio = ratio
        self._bound = TraceIdRatioBased.get_bound_for_rate(ratio)

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
        parent = get_current_span(parent_context).get_span_context()
        if parent.is_valid:
            keep = parent.trace_flags.sampled
        else:
            keep = self._ratio >= 1.0 or (trace_id & TraceIdRatioBased.TRACE_ID_LIMIT) < self._bound
        # Attributes pass through either way: a RECORD_ONLY span still feeds the LLM metrics.
        return SamplingResult(Decision.RECORD_AND_SAMPLE if keep else Decision.RECORD_ONLY, attributes,
                              parent.trace_state)

    def get_description(self) -> str:
        return f"LlmSampler{{parent-based, ratio={self._ratio}, unsampled spans recorded}}"
