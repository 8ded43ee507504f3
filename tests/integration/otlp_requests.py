"""Build OTLP export requests the way SDKs do, send them to a server, read its answers.

Only the integration tests use these; they build real opentelemetry-proto messages so the
server decodes exactly what an exporter would send.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.proto.trace.v1.trace_pb2 import Status as SpanStatus

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MS = 1_000_000
_ID_KEYS = ("traceId", "spanId", "parentSpanId")
_RESPONSES: dict[str, type[Message]] = {
    "traces": ExportTraceServiceResponse,
    "logs": ExportLogsServiceResponse,
    "metrics": ExportMetricsServiceResponse,
}


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list | tuple):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=key_values(value)))
    return AnyValue(string_value=str(value))


def key_values(attrs: Mapping[str, Any] | None) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in (attrs or {}).items()]


def new_trace_id() -> bytes:
    return os.urandom(16)


def new_span_id() -> bytes:
    return os.urandom(8)


def make_span(name: str, *, trace_id: bytes | None = None, span_id: bytes | None = None, parent: bytes = b"",
              start_ns: int | None = None, duration_ms: float = 1.0, attrs: Mapping[str, Any] | None = None,
              error: bool = False, kind: int = Span.SPAN_KIND_INTERNAL) -> Span:
    start = time.time_ns() if start_ns is None else start_ns
    return Span(
        trace_id=new_trace_id() if trace_id is None else trace_id,
        span_id=new_span_id() if span_id is None else span_id,
        parent_span_id=parent, name=name, kind=kind,
        start_time_unix_nano=start, end_time_unix_nano=start + int(duration_ms * MS),
        attributes=key_values(attrs),
        status=SpanStatus(code=SpanStatus.STATUS_CODE_ERROR if error else SpanStatus.STATUS_CODE_UNSET),
    )


def trace_request(spans: Iterable[Span], service: str = "itest", resource: Mapping[str, Any] | None = None,
                  scope: str = "tests.integration") -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(key_values({"service.name": service, **(resource or {})}))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = scope
    scope_spans.spans.extend(spans)
    return request


def llm_attrs(model: str, input_tokens: int, output_tokens: int, *, provider: str = "openai",
              operation: str = "chat", response_model: str | None = None) -> dict[str, Any]:
    """Attributes of an LLM call in the OTel GenAI convention (as opentelemetry-instrumentation-openai-v2)."""
    return {
        "gen_ai.operation.name": operation,
        "gen_ai.system": provider,
        "gen_ai.request.model": model,
        "gen_ai.response.model": response_model or model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }


def log_request(records: Iterable[LogRecord], service: str = "itest") -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(key_values({"service.name": service}))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "tests.integration"
    scope_logs.log_records.extend(records)
    return request


def make_log(body: str, *, severity: int = 9, severity_text: str = "", time_ns: int | None = None,
             trace_id: bytes = b"", span_id: bytes = b"", attrs: Mapping[str, Any] | None = None) -> LogRecord:
    t = time.time_ns() if time_ns is None else time_ns
    return LogRecord(time_unix_nano=t, observed_time_unix_nano=t, severity_number=severity,
                     severity_text=severity_text, body=AnyValue(string_value=body), trace_id=trace_id,
                     span_id=span_id, attributes=key_values(attrs))


def metrics_request(service: str = "itest") -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.extend(key_values({"service.name": service}))
    resource_metrics.scope_metrics.add().scope.name = "tests.integration"
    return request


def to_otlp_json(message: Message) -> bytes:
    """A protobuf OTLP message as spec OTLP/JSON: hex ids, integer enums, int64 as strings."""
    document = json_format.MessageToDict(message, use_integers_for_enums=True)
    _ids_to_hex(document)
    return json.dumps(document).encode()


def _ids_to_hex(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _ids_to_hex(value)
    elif isinstance(node, list):
        for item in node:
            _ids_to_hex(item)


def post(base_url: str, signal: str, body: Message | bytes, *, content_type: str = PROTOBUF,
         encoding: str | None = None, headers: Mapping[str, str] | None = None,
         client: httpx.Client | None = None, timeout: float = 120.0) -> httpx.Response:
    """POST one OTLP/HTTP export; a message is serialised in the content type's encoding."""
    if isinstance(body, Message):
        body = to_otlp_json(body) if content_type == JSON else body.SerializeToString()
    sent_headers = {"content-type": content_type, **(headers or {})}
    if encoding:
        sent_headers["content-encoding"] = encoding
    sender = client or httpx
    return sender.post(f"{base_url}/v1/{signal}", content=body, headers=sent_headers, timeout=timeout)


def export_response(signal: str, response: httpx.Response) -> Message:
    """The Export*ServiceResponse of a 2xx answer, in whichever encoding the server used."""
    message = _RESPONSES[signal]()
    if response.headers.get("content-type", "").startswith(JSON):
        json_format.Parse(response.content or b"{}", message, ignore_unknown_fields=True)
    else:
        message.ParseFromString(response.content)
    return message


def error_status(response: httpx.Response) -> Status:
    """The google.rpc.Status body of a 4xx/5xx answer."""
    status = Status()
    if response.headers.get("content-type", "").startswith(JSON):
        json_format.Parse(response.content, status, ignore_unknown_fields=True)
    else:
        status.ParseFromString(response.content)
    return status


def fetch_all_traces(base_url: str, params: Mapping[str, Any], page_size: int) -> list[dict[str, Any]]:
    """Every trace of a query, following next_cursor page by page."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10_000):
        query = {**params, "limit": page_size, **({"cursor": cursor} if cursor else {})}
        response = httpx.get(f"{base_url}/api/v1/traces", params=query, timeout=30)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return items
    raise AssertionError("pagination did not end")
