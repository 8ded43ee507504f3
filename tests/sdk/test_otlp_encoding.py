"""llmlens's own OTLP span encoder against OpenTelemetry's, and the HTTP span exporter against a real server."""

from __future__ import annotations

import gzip
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as otel_encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from llmlens.sdk import otlp_encoding
from llmlens.sdk.otlp_encoding import encode_spans
from llmlens.sdk.span_export import OtlpHttpSpanExporter, parse_headers, retry_after_seconds


def _spans(resource_attrs: dict[str, Any] | None = None, limits: SpanLimits | None = None) -> list[Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(resource_attrs or {"service.name": "enc"}),
                              span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    ours = provider.get_tracer("llmlens", "0.1.0")
    other = provider.get_tracer("other.lib", "2", schema_url="https://opentelemetry.io/schemas/1.26.0",
                                attributes={"scope.attr": "x"})
    remote = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                         trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "v1"), ("x", "y")]))
    with ours.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT,
                                    context=set_span_in_context(NonRecordingSpan(remote)),
                                    attributes={"gen_ai.operation.name": "chat", "server.port": 8080}) as span:
        span.set_attributes({
            "s": "héllo ✓ 中文", "empty": "", "t": True, "f": False, "i": 42, "neg": -7, "big": 2**62,
            "zero": 0.0, "negzero": -0.0, "pi": 3.14159, "strs": ("a", "b"), "ints": (1, 2, 3),
            "floats": (0.5, -1.5), "bools": (True, False), "long": "x" * 5000,
        })
        span.add_event("gen_ai.evaluation.result", {"gen_ai.operation.name": "chat", "score": 0.5})
        span.add_event("bare")
        span.set_status(Status(StatusCode.ERROR, "boom: ünïcode"))
        link_target = span.get_span_context()
    for kind in SpanKind:
        with other.start_as_current_span(f"kind {kind.name}", kind=kind, links=[Link(link_target, {"l": 1})]):
            pass
    with ours.start_as_current_span("ok") as span:
        span.set_status(Status(StatusCode.OK))
    return list(memory.get_finished_spans())


def _decoded_like_otel(spans: list[Any]) -> ExportTraceServiceRequest:
    """Our encoding, decoded, minus what OpenTelemetry's encoder leaves out: a link's trace_state."""
    ours = ExportTraceServiceRequest.FromString(encode_spans(spans))
    for resource_spans in ours.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                for link in span.links:
                    link.ClearField("trace_state")
    return ours


def _same_as_otel(spans: list[Any]) -> None:
    assert _decoded_like_otel(spans) == otel_encode_spans(spans)


def test_encoding_decodes_to_the_same_message_as_opentelemetrys_encoder():
    spans = _spans()
    _same_as_otel(spans)
    _same_as_otel(spans)  # second time through the caches
    without_links = [s for s in spans if not s.links]
    assert encode_spans(without_links) == otel_encode_spans(without_links).SerializeToString()  # same order too
    decoded = ExportTraceServiceRequest.FromString(encode_spans(spans))
    linked = [s for rs in decoded.resource_spans for ss in rs.scope_spans for s in ss.spans if s.links]
    assert linked and all(link.trace_state == "vendor=v1,x=y" for s in linked for link in s.links)


def test_an_attribute_cached_in_one_message_type_is_reencoded_in_another():
    """The cache holds KeyValues, not tags: a span attribute and an event attribute with the same pair."""
    spans = _spans()
    decoded = ExportTraceServiceRequest.FromString(encode_spans(spans))
    chat = decoded.resource_spans[0].scope_spans[0].spans[0]
    assert {kv.key for kv in chat.events[0].attributes} == {"gen_ai.operation.name", "score"}


def test_several_resources_and_dropped_counts():
    limits = SpanLimits(max_span_attributes=3, max_events=1, max_links=1, max_event_attributes=1)
    spans = _spans({"service.name": "a"}, limits) + _spans({"service.name": "b", "k": 1}, limits)
    assert any(s.dropped_attributes for s in spans) and any(s.dropped_events for s in spans)
    _same_as_otel(spans)
    decoded = ExportTraceServiceRequest.FromString(encode_spans(spans))
    assert len(decoded.resource_spans) == 2


def test_values_protobuf_cannot_carry_drop_the_attribute_not_the_span(caplog):
    spans = _spans()
    span = spans[0]
    span._attributes = {"huge": 2**64, "nested": {"a": [1, {"b": "c"}]}, "surrogate": "bad \udc80 text",
                        "ok": "kept", "obj": object()}
    decoded = ExportTraceServiceRequest.FromString(encode_spans([span]))
    attrs = {kv.key: kv.value for kv in decoded.resource_spans[0].scope_spans[0].spans[0].attributes}
    assert set(attrs) == {"nested", "surrogate", "ok"}
    assert attrs["ok"].string_value == "kept" and attrs["surrogate"].string_value == "bad ? text"
    assert attrs["nested"].kvlist_value.values[0].value.array_value.values[1].kvlist_value.values[0].key == "b"


def test_caches_stay_bounded(monkeypatch):
    monkeypatch.setattr(otlp_encoding, "_CACHE_MAX", 50)
    spans = _spans()
    for i in range(500):
        spans[0]._attributes = {"gen_ai.response.id": f"id-{i}", f"key-{i}": i}
        decoded = ExportTraceServiceRequest.FromString(encode_spans([spans[0]]))
        kvs = decoded.resource_spans[0].scope_spans[0].spans[0].attributes
        assert [(kv.key, kv.value.string_value or kv.value.int_value) for kv in kvs] == [
            ("gen_ai.response.id", f"id-{i}"), (f"key-{i}", i)]
    assert len(otlp_encoding._attribute_cache) <= 50 and len(otlp_encoding._key_prefix) <= 50


# --- The exporter, against a real HTTP server -------------------------------------------------

class _Collector:
    """A loopback OTLP/HTTP endpoint answering with a scripted list of (status, headers, body)."""

    def __init__(self, answers: list[tuple[int, dict[str, str], bytes]]) -> None:
        self.answers = answers
        self.requests: list[tuple[dict[str, str], bytes]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                collector.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status, headers, answer = collector.answers.pop(0) if collector.answers else (200, {}, b"")
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def collector() -> Iterator[_Collector]:
    c = _Collector([])
    yield c
    c.server.shutdown()


def test_export_posts_protobuf_with_env_and_argument_headers(collector, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=ml%20ops,authorization=from-env")
    exporter = OtlpHttpSpanExporter(collector.url, headers={"Authorization": "Bearer arg"})
    spans = _spans()
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    headers, body = collector.requests[0]
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["x-team"] == "ml ops" and headers["authorization"] == "Bearer arg"
    assert ExportTraceServiceRequest.FromString(body) == ExportTraceServiceRequest.FromString(encode_spans(spans))


def test_export_gzip_from_the_environment(collector, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    exporter = OtlpHttpSpanExporter(collector.url)
    spans = _spans()
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    headers, body = collector.requests[0]
    assert headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == encode_spans(spans)


def test_export_retries_transient_errors_honouring_retry_after(collector):
    collector.answers = [(503, {"retry-after": "0"}, b""), (429, {"retry-after": "0.1"}, b""), (200, {}, b"")]
    assert OtlpHttpSpanExporter(collector.url).export(_spans()) is SpanExportResult.SUCCESS
    assert len(collector.requests) == 3
    assert len({body for _, body in collector.requests}) == 1  # the same batch each time


def test_export_does_not_retry_a_rejection(collector, caplog):
    collector.answers = [(400, {}, b"bad body")]
    with caplog.at_level(logging.WARNING, logger="llmlens.sdk"):
        assert OtlpHttpSpanExporter(collector.url).export(_spans()) is SpanExportResult.FAILURE
    assert len(collector.requests) == 1
    assert "HTTP 400: bad body" in caplog.text


def test_partial_success_is_reported(collector, caplog):
    answer = ExportTraceServiceResponse()
    answer.partial_success.rejected_spans = 2
    answer.partial_success.error_message = "2 spans without valid ids"
    collector.answers = [(200, {"content-type": "application/x-protobuf"}, answer.SerializeToString())]
    with caplog.at_level(logging.WARNING, logger="llmlens.sdk"):
        assert OtlpHttpSpanExporter(collector.url).export(_spans()) is SpanExportResult.SUCCESS
    assert "rejected 2 of" in caplog.text and "without valid ids" in caplog.text


def test_unreachable_endpoint_warns_once_then_recovers(collector, caplog):
    closed = OtlpHttpSpanExporter("http://127.0.0.1:9/v1/traces", timeout_s=0.5)
    with caplog.at_level(logging.DEBUG, logger="llmlens.sdk"):
        assert closed.export(_spans()) is SpanExportResult.FAILURE
        assert closed.export(_spans()) is SpanExportResult.FAILURE
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "dropped" in warnings[0].getMessage()
        closed._endpoint = collector.url  # the collector comes back
        assert closed.export(_spans()) is SpanExportResult.SUCCESS
    assert "works again" in caplog.text


def test_shutdown_interrupts_a_retry_wait(collector):
    collector.answers = [(503, {"retry-after": "30"}, b"")] * 3
    exporter = OtlpHttpSpanExporter(collector.url, timeout_s=60)
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(exporter.export(_spans())))
    worker.start()
    while not collector.requests:
        threading.Event().wait(0.01)
    exporter.shutdown()
    worker.join(timeout=5)
    assert not worker.is_alive() and result == [SpanExportResult.FAILURE]
    assert exporter.export(_spans()) is SpanExportResult.FAILURE  # after shutdown: refused at once


def test_header_and_retry_after_parsing():
    assert parse_headers("a=1, B=two%3D2 ,junk,=x") == {"a": "1", "b": "two=2"}
    assert retry_after_seconds("2.5") == 2.5 and retry_after_seconds("-3") == 0.0
    assert retry_after_seconds("nan") is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
