"""llmlens.score(): a quality score or user feedback tied to a trace (and a metric).

The score is a short span `evaluation {name}` carrying a `gen_ai.evaluation.result` event.
Given trace_id/span_id (hex strings or ints), the span is parented into that trace and names
its target in `llmlens.score.trace_id` / `llmlens.score.span_id`, so the server files it under
the right trace even when the score arrives long after the call (user feedback). Without them,
the current span is the target. Also sets the `llm_quality_score{app,name}` gauge.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from llmlens import semconv
from llmlens.sdk import runtime
from llmlens.sdk.context import current_app_department


def _as_int(value: str | int | None, bits: int) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    try:
        number = int(value, 16)
    except ValueError:
        return 0
    return number if 0 < number < (1 << bits) else 0


def score(
    name: str,
    value: float,
    *,
    trace_id: str | int | None = None,
    span_id: str | int | None = None,
    comment: str | None = None,
    label: str | None = None,
) -> None:
    """Record a score `name` = `value` for a trace (default: the current one). No-op before init()."""
    rt = runtime.active
    if rt is None:
        return
    value = float(value)
    tid, sid = _as_int(trace_id, 128), _as_int(span_id, 64)
    if tid:
        parent_context = SpanContext(tid, sid or 0x1, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
        context = trace.set_span_in_context(NonRecordingSpan(parent_context))
    else:
        current = trace.get_current_span().get_span_context()
        tid, sid = (current.trace_id, current.span_id) if current.is_valid else (0, 0)
        context = None
    attributes = {semconv.EVALUATION_NAME: name, semconv.EVALUATION_SCORE: value, semconv.LLMLENS_SPAN_KIND: "evaluation"}
    if tid:
        attributes[semconv.SCORE_TARGET_TRACE] = format(tid, "032x")
    if sid:
        attributes[semconv.SCORE_TARGET_SPAN] = format(sid, "016x")
    event = {semconv.EVALUATION_NAME: name, semconv.EVALUATION_SCORE: value}
    if label is not None:
        event[semconv.EVALUATION_LABEL] = label
    if comment is not None:
        event[semconv.EVALUATION_EXPLANATION] = comment
    span = rt.tracer.start_span(f"evaluation {name}", context=context, attributes=attributes)
    span.add_event(semconv.EVALUATION_EVENT, event)
    span.end()
    app, _ = current_app_department(rt.config.app, rt.config.department)
    rt.metrics.record_score(name, value, app)
