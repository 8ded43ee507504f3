"""set_clean_attributes: the same attributes as Span.set_attributes, by the direct path or the public one."""

from __future__ import annotations

from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmlens.sdk.span_attributes import set_clean_attributes


def _finished(limits: SpanLimits | None, attrs: dict) -> dict:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=limits) if limits else TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("t").start_span("s", attributes={"start": 1})
    set_clean_attributes(span, attrs)
    span.end()
    set_clean_attributes(span, {"late": 1})  # after end: ignored, as set_attributes does
    (finished,) = exporter.get_finished_spans()
    return dict(finished.attributes)


def test_clean_values_land_as_set_attributes_would_leave_them() -> None:
    attrs = {"s": "x", "i": 3, "f": 0.5, "b": True, "t": ("stop", "length")}
    assert _finished(None, attrs) == {"start": 1, **attrs}


def test_other_values_take_the_public_path_and_are_cleaned() -> None:
    got = _finished(None, {"reasons": ["stop"], "ok": "y"})
    assert got == {"start": 1, "reasons": ("stop",), "ok": "y"}  # the list became OTel's tuple


def test_limits_are_honoured() -> None:
    got = _finished(SpanLimits(max_span_attribute_length=3), {"long": "abcdef"})
    assert got["long"] == "abc"
    got = _finished(SpanLimits(max_span_attributes=2), {"a": 1, "b": 2})
    assert len(got) == 2 and got["b"] == 2  # the oldest made room, as BoundedAttributes does
