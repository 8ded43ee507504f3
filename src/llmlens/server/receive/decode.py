"""Bytes on the wire -> OTLP protobuf messages. Shared by the HTTP and gRPC receivers.

OTLP/JSON differs from protobuf's canonical JSON in one way that matters: trace and span
ids are hex, not base64. We convert ids in place and then let protobuf's own JSON parser
do the rest (int64 as strings, integer enums, unknown fields ignored).
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from typing import Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llmlens.server.errors import PayloadError, PayloadTooLarge, UnsupportedMedia

Signal = Literal["traces", "logs", "metrics"]

REQUEST_TYPES: dict[str, type[Message]] = {
    "traces": ExportTraceServiceRequest,
    "logs": ExportLogsServiceRequest,
    "metrics": ExportMetricsServiceRequest,
}
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_MAX_JSON_DEPTH = 128


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo Content-Encoding, refusing to inflate past `limit` bytes (gzip bombs)."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limit:
            raise PayloadTooLarge(f"body is {len(body)} bytes, over the {limit}-byte limit")
        return body
    if encoding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS  # zlib-wrapped, as HTTP's "deflate" means; raw deflate tried below
    else:
        raise UnsupportedMedia(f"content-encoding {encoding!r} is not supported (use gzip, deflate or identity)")
    try:
        return _inflate(body, wbits, limit)
    except zlib.error as exc:
        if encoding == "deflate":
            try:
                return _inflate(body, -zlib.MAX_WBITS, limit)
            except zlib.error:
                pass
        raise PayloadError(f"body is not valid {encoding} data: {exc}") from exc


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"body inflates past the {limit}-byte limit")
    if not inflater.eof:
        raise PayloadError("compressed body is truncated")
    return out


def content_kind(content_type: str | None) -> Literal["protobuf", "json"]:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in ("application/x-protobuf", "application/protobuf"):
        return "protobuf"
    if media == "application/json":
        return "json"
    raise UnsupportedMedia(
        f"content-type {content_type!r} is not supported (use application/x-protobuf or application/json)"
    )


def decode_request(signal: Signal, body: bytes, kind: Literal["protobuf", "json"]) -> Message:
    message = REQUEST_TYPES[signal]()
    if kind == "protobuf":
        try:
            message.ParseFromString(body)
        except (DecodeError, RecursionError) as exc:
            raise PayloadError(f"body is not a valid OTLP {signal} protobuf message: {exc}") from exc
        return message
    try:
        document = json.loads(body.decode("utf-8"))  # OTLP/JSON is UTF-8; json.loads would guess UTF-16 too
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not valid UTF-8: {exc}") from exc
    except RecursionError as exc:
        raise PayloadError("JSON body is nested too deeply") from exc
    except ValueError as exc:
        raise PayloadError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise PayloadError(f"OTLP/JSON body must be an object, got {type(document).__name__}")
    _hex_ids_to_base64(document, 0)
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
        raise PayloadError(f"body is not a valid OTLP/JSON {signal} request: {exc}") from exc
    return message


def _hex_ids_to_base64(node: object, depth: int) -> None:
    if depth > _MAX_JSON_DEPTH:
        raise PayloadError(f"JSON body is nested deeper than {_MAX_JSON_DEPTH} levels")
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                node[key] = _hex_to_base64(key, value)
            elif isinstance(value, dict | list):
                _hex_ids_to_base64(value, depth + 1)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list):
                _hex_ids_to_base64(item, depth + 1)


def _hex_to_base64(key: str, value: str) -> str:
    if value == "":
        return ""
    try:
        raw = bytes.fromhex(value)
    except ValueError as exc:
        raise PayloadError(f"{key} {value[:40]!r} is not hex (OTLP/JSON ids are hex strings)") from exc
    return base64.b64encode(raw).decode("ascii")


def gzip_bytes(data: bytes) -> bytes:
    """For tests and benchmarks: what an exporter with compression=gzip sends."""
    return gzip.compress(data)
