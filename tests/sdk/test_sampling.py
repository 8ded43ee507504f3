"""The SDK's sampler: OTel's parent-based ratio sampling, with unsampled spans recorded (for metrics), not dropped."""

from __future__ import annotations

from opentelemetry.sdk.trace.sampling import Decision, ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState, set_span_in_context

from llmlens.sdk.sampling import LlmSampler


def _parent(sampled: bool, remote: bool = True) -> object:
    ctx = SpanContext(0x1234, 0x99, is_remote=remote, trace_flags=TraceFlags(1 if sampled else 0),
                      trace_state=TraceState([("k", "v")]))
    return set_span_in_context(NonRecordingSpan(ctx))


def test_roots_follow_the_ratio_like_opentelemetrys_sampler():
    for ratio in (0.0, 0.1, 0.5, 1.0):
        ours, reference = LlmSampler(ratio), ParentBased(TraceIdRatioBased(ratio))
        for trace_id in range(1, 2**64, 2**64 // 997):
            expected = reference.should_sample(None, trace_id, "x").decision
            got = ours.should_sample(None, trace_id, "x").decision
            assert got == (Decision.RECORD_AND_SAMPLE if expected is Decision.RECORD_AND_SAMPLE
                           else Decision.RECORD_ONLY), (ratio, trace_id)


def test_children_follow_their_parent_and_keep_its_trace_state():
    sampler = LlmSampler(0.0)
    for remote in (True, False):
        kept = sampler.should_sample(_parent(True, remote), 0x1234, "child", attributes={"a": 1})
        assert kept.decision is Decision.RECORD_AND_SAMPLE and kept.trace_state == TraceState([("k", "v")])
        recorded = LlmSampler(1.0).should_sample(_parent(False, remote), 0x1234, "child", attributes={"a": 1})
        assert recorded.decision is Decision.RECORD_ONLY
        assert dict(recorded.attributes) == {"a": 1}  # a recorded-only span keeps its attributes for the metrics
