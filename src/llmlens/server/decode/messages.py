"""OTLP request bytes (protobuf or OTLP/JSON) -> protobuf messages, for every signal.

OTLP/JSON differs from protobuf's canonical JSON in one way that matters: trace and span
ids are hex, not base64. We convert ids in place and then let protobuf's own JSON parser
do the rest (int64 as strings, integer enums, unknown fields ignored).
"""

from __future__ import annotations

import base64
import json
from typing import Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from llmlens.server.errors import PayloadError

_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_MAX_JSON_DEPTH = 128
# How error messages name a request: "not a valid OTLP traces protobuf message".
_SIGNAL_WORDS = {"ExportTraceServiceRequest": "traces", "ExportLogsServiceRequest": "logs",
                 "ExportMetricsServiceRequest": "metrics", "ExportProfilesServiceRequest": "profiles",
                 "PushRequest": "Pyroscope push"}


def decode_request(request_type: type[Message], body: bytes, kind: Literal["protobuf", "json"]) -> Message:
    """A parsed request of `request_type` (an Export*ServiceRequest); PayloadError if it is not one."""
    message = request_type()
    signal = _SIGNAL_WORDS.get(request_type.__name__, request_type.__name__)
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
