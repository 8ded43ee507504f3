"""The real OpenTelemetry SDK and its OTLP exporters (HTTP/protobuf and gRPC, plain and gzip, set up
only through the standard OTEL_* environment variables) send traces, logs and metrics to a real
server; OTLP/JSON made by the SDK's own encoders is posted too. Everything is read back through the API."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from tests.integration.otlp_requests import JSON, export_response, post, to_otlp_json
from tests.server_process import ServerProcess

# transport -> (exporter protocol, compression)
TRANSPORTS = {
    "http-protobuf": ("http", "none"),
    "http-protobuf-gzip": ("http", "gzip"),
    "grpc": ("grpc", "none"),
    "grpc-gzip": ("grpc", "gzip"),
}


@pytest.fixture(params=list(TRANSPORTS))
def sdk_env(request: pytest.FixtureRequest, llmlens_server: ServerProcess,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """OTEL_* variables as a user would set them for this transport; yields a fresh service name."""
    protocol, compression = TRANSPORTS[request.param]
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_RESOURCE_ATTRIBUTES",
                 "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_INSECURE"):
        monkeypatch.delenv(name, raising=False)
    port = llmlens_server.http_port if protocol == "http" else llmlens_server.grpc_port
    service = f"sdk-{request.param}-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    if compression != "none":
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", compression)
    monkeypatch.setenv("OTEL_SERVICE_NAME", service)
    yield protocol, service


def exporters(protocol: str) -> tuple[Any, Any, Any]:
    """The span, log and metric exporters of one protocol, constructed with no arguments (defaults + env)."""
    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter(), OTLPLogExporter(), OTLPMetricExporter()


def api(server: ServerProcess, path: str, **params: Any) -> Any:
    answer = httpx.get(server.url + path, params=params, timeout=30)
    assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text[:300]}"
    return answer.json()


def test_sdk_traces_arrive_whole(sdk_env: tuple[str, str], llmlens_server: ServerProcess) -> None:
    """A TracerProvider with a BatchSpanProcessor and a default exporter: parent, LLM child and error span
    arrive with their attributes, status and LLM facts."""
    protocol, service = sdk_env
    span_exporter, _, _ = exporters(protocol)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    tracer = provider.get_tracer("tests.integration.sdk")
    with tracer.start_as_current_span("answer-question") as root:
        root.set_attribute("user.question.length", 42)
        with tracer.start_as_current_span("chat gpt-4o-mini") as llm:
            llm.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
                                "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini",
                                "gen_ai.usage.input_tokens": 120, "gen_ai.usage.output_tokens": 30,
                                "gen_ai.request.temperature": 0.5, "tags": ["a", "b"]})
        with tracer.start_as_current_span("lookup") as failing:
            failing.set_status(Status(StatusCode.ERROR, "index offline"))
    trace_id = format(root.get_span_context().trace_id, "032x")
    assert provider.force_flush(30_000)
    provider.shutdown()

    listed = api(llmlens_server, "/api/v1/traces", service=service, start="-1h")["items"]
    assert [t["trace_id"] for t in listed] == [trace_id]
    assert listed[0]["span_count"] == 3 and listed[0]["error"] is True and listed[0]["llm_calls"] == 1
    spans = {s["name"]: s for s in api(llmlens_server, f"/api/v1/traces/{trace_id}")["spans"]}
    assert set(spans) == {"answer-question", "chat gpt-4o-mini", "lookup"}
    assert spans["answer-question"]["resource"]["service.name"] == service
    assert spans["answer-question"]["attributes"]["user.question.length"] == "42"
    assert spans["chat gpt-4o-mini"]["parent_span_id"] == spans["answer-question"]["span_id"]
    assert spans["chat gpt-4o-mini"]["attributes"]["tags"] == '["a", "b"]'
    assert (spans["lookup"]["status"], spans["lookup"]["status_message"]) == ("error", "index offline")
    llm = spans["chat gpt-4o-mini"]["llm"]
    assert (llm["request_model"], llm["input_tokens"], llm["output_tokens"]) == ("gpt-4o-mini", 120, 30)
    assert llm["priced"] is True and llm["cost_usd"] > 0


def test_sdk_logs_arrive_with_their_trace(sdk_env: tuple[str, str], llmlens_server: ServerProcess) -> None:
    """Log records emitted through the SDK's Logs API (as logging bridges do): they arrive with severity,
    body, attributes and the trace they were emitted in."""
    protocol, service = sdk_env
    span_exporter, log_exporter, _ = exporters(protocol)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    logger = logger_provider.get_logger("tests.integration.sdk")
    marker = uuid.uuid4().hex
    with tracer_provider.get_tracer("tests.integration.sdk").start_as_current_span("with-logs") as span:
        logger.emit(body=f"retrieved 3 documents {marker}", severity_number=SeverityNumber.INFO,
                    severity_text="INFO", attributes={"documents": 3})
        logger.emit(body=f"model call failed {marker}", severity_number=SeverityNumber.ERROR, severity_text="ERROR")
    logger.emit(body=f"outside any span {marker}", severity_number=SeverityNumber.WARN, severity_text="WARN")
    assert logger_provider.force_flush(30_000)
    logger_provider.shutdown()
    tracer_provider.shutdown()
    trace_id = format(span.get_span_context().trace_id, "032x")

    items = api(llmlens_server, "/api/v1/logs", q=marker, start="-1h")["items"]
    assert sorted((i["severity_number"], i["body"]) for i in items) == [
        (9, f"retrieved 3 documents {marker}"), (13, f"outside any span {marker}"),
        (17, f"model call failed {marker}")]
    assert {i["service"] for i in items} == {service}
    in_trace = api(llmlens_server, "/api/v1/logs", trace_id=trace_id)["items"]
    assert sorted(i["body"] for i in in_trace) == [f"model call failed {marker}", f"retrieved 3 documents {marker}"]
    assert next(i for i in in_trace if i["severity_number"] == 9)["attributes"] == {"documents": "3"}
    assert api(llmlens_server, "/api/v1/logs", q=marker, severity="error", start="-1h")["items"][0]["severity_number"] == 17


def test_sdk_metrics_arrive_as_series(sdk_env: tuple[str, str], llmlens_server: ServerProcess) -> None:
    """A MeterProvider with a periodic reader and a default exporter: counter, histogram and gauge points
    arrive with their values, units and attributes."""
    protocol, service = sdk_env
    _, _, metric_exporter = exporters(protocol)
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("tests.integration.sdk")
    prefix = service.replace("-", "_")
    counter = meter.create_counter(f"{prefix}.tokens", unit="{token}")
    histogram = meter.create_histogram(f"{prefix}.duration", unit="s")
    gauge = meter.create_gauge(f"{prefix}.queue", unit="{item}")
    counter.add(120, {"model": "gpt-4o-mini"})
    counter.add(30, {"model": "gpt-4o-mini"})
    counter.add(7, {"model": "gpt-4o"})
    for value in (0.5, 1.5, 4.0):
        histogram.record(value)
    gauge.set(17)
    assert provider.force_flush(30_000)
    provider.shutdown()

    listed = {i["name"]: i for i in api(llmlens_server, "/api/v1/metrics", start="-1h")["items"]}
    assert (listed[f"{prefix}.tokens"]["type"], listed[f"{prefix}.tokens"]["unit"]) == ("sum", "{token}")
    assert listed[f"{prefix}.duration"]["type"] == "histogram"
    assert listed[f"{prefix}.queue"]["type"] == "gauge"
    tokens = api(llmlens_server, f"/api/v1/metrics/{prefix}.tokens/series", service=service)["series"]
    assert {s["attributes"]["model"]: s["points"][-1]["value"] for s in tokens} == {"gpt-4o-mini": 150, "gpt-4o": 7}
    duration = api(llmlens_server, f"/api/v1/metrics/{prefix}.duration/series", service=service)["series"]
    assert (duration[0]["points"][-1]["count"], duration[0]["points"][-1]["sum"]) == (3, 6.0)
    queue = api(llmlens_server, f"/api/v1/metrics/{prefix}.queue/series", service=service)["series"]
    assert queue[0]["points"][-1]["value"] == 17


def test_sdk_otlp_json_is_accepted(llmlens_server: ServerProcess) -> None:
    """SDK spans, log records and metrics encoded by the SDK's own OTLP encoders and posted as gzip OTLP/JSON
    are stored and readable (the JSON exporter is not installable next to this SDK version)."""
    service = f"sdk-json-{uuid.uuid4().hex[:8]}"
    resource = Resource.create({"service.name": service})
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = tracer_provider.get_tracer("tests.json")
    with tracer.start_as_current_span("json-root") as root, tracer.start_as_current_span("json-child"):
        pass
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    logger_provider.get_logger("tests.json").emit(body=f"json log {service}", severity_text="INFO")
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter_provider.get_meter("tests.json").create_counter(f"{service}.count").add(5)

    bodies = {"traces": encode_spans(spans.get_finished_spans()), "logs": encode_logs(logs.get_finished_logs()),
              "metrics": encode_metrics(reader.get_metrics_data())}
    for signal, message in bodies.items():
        answer = post(llmlens_server.url, signal, gzip.compress(to_otlp_json(message)), content_type=JSON,
                      encoding="gzip")
        assert answer.status_code == 200, f"{signal}: {answer.text}"
        assert answer.headers["content-type"].startswith(JSON)
        assert not export_response(signal, answer).HasField("partial_success")

    trace_id = format(root.get_span_context().trace_id, "032x")
    names = {s["name"] for s in api(llmlens_server, f"/api/v1/traces/{trace_id}")["spans"]}
    assert names == {"json-root", "json-child"}
    assert [i["body"] for i in api(llmlens_server, "/api/v1/logs", service=service, start="-1h")["items"]] == [
        f"json log {service}"]
    series = api(llmlens_server, f"/api/v1/metrics/{service}.count/series")["series"]
    assert series[0]["points"][-1]["value"] == 5
