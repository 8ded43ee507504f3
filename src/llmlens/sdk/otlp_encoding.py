"""OTLP/protobuf bytes for finished spans, written straight from the SDK's span objects.

Why not `encode_spans` from opentelemetry-exporter-otlp-proto-common: it builds a protobuf
object for every span, attribute and value and then serialises them, which measured as the
largest single cost of an instrumented LLM call (more than creating the span). Here the
wire format is written directly, and what repeats is encoded once: the resource and scope
headers, the tag-and-key prefix of every attribute key, and whole attributes whose
(key, value) pair recurs (operation, provider, model, server address, request parameters,
token counts). The output decodes to the same message as `encode_spans` (tested field by
field in tests/sdk/test_otlp_encoding.py).

Wire format reference: opentelemetry-proto trace/v1/trace.proto and common/v1/common.proto.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

log = logging.getLogger("llmlens.sdk")

_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack

# Span flags: the context "has is_remote" bit, plus "is remote" when the parent is remote.
_FLAGS_HAS_IS_REMOTE = 0x100
_FLAGS_IS_REMOTE = 0x200
# SDK SpanKind value (INTERNAL=0 ...) -> OTLP enum (SPAN_KIND_INTERNAL=1 ...).
_KIND = [b"\x30" + bytes((k + 1,)) for k in range(5)]

# Cache limits: short values only (a prompt is not worth keeping), and a bounded table that
# is simply emptied when full (a new model name or server appears rarely; token counts cycle).
_CACHEABLE_STR_LEN = 256
_CACHE_MAX = 8192

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_SMALL_VARINTS = [bytes((n,)) for n in range(0x80)]


def varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL_VARINTS[n] if n >= 0 else _varint_slow(n + (1 << 64))
    return _varint_slow(n)


def _varint_slow(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return tag + varint(len(payload)) + payload


def _any_value(value: Any) -> bytes:
    """The AnyValue message for an attribute value (bool before int: bool is an int)."""
    if isinstance(value, str):
        return _field(b"\x0a", value.encode("utf-8", "replace"))
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError("integer outside int64")
        return b"\x18" + varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if value is None:
        return b""
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join([_field(b"\x0a", _any_value(v)) for v in value]))
    if isinstance(value, Mapping):
        return _field(b"\x32", b"".join([_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items()]))
    raise TypeError(f"invalid attribute value type {type(value).__name__}")


_key_prefix: dict[str, bytes] = {}


def _key_value(key: str, value: Any) -> bytes:
    prefix = _key_prefix.get(key)
    if prefix is None:
        if len(_key_prefix) >= _CACHE_MAX:
            _key_prefix.clear()
        prefix = _key_prefix[key] = _field(b"\x0a", key.encode("utf-8", "replace"))
    return prefix + _field(b"\x12", _any_value(value))


# (key, type, value) -> length-prefixed KeyValue message, to follow the field tag of the message
# it is in; the type is in the key because True == 1 == 1.0 in Python but each encodes differently.
_attribute_cache: dict[tuple[str, type, Any], bytes] = {}


def attributes_field(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    """Every attribute as a repeated KeyValue field with the given tag (one tag per message type)."""
    if not attributes:
        return b""
    # The SDK's BoundedAttributes iterates through Mapping's generic methods and a lock; its
    # plain dict is read directly (the span has ended: nothing writes it any more).
    attributes = getattr(attributes, "_dict", attributes)
    out = []
    cache = _attribute_cache
    for key, value in attributes.items():
        kind = type(value)
        cacheable = (kind is str and len(value) <= _CACHEABLE_STR_LEN) or kind is int or kind is bool or (
            kind is float and value)  # not 0.0: it equals -0.0, which encodes differently
        if cacheable:
            encoded = cache.get((key, kind, value))
            if encoded is not None:
                out.append(tag)
                out.append(encoded)
                continue
        try:
            encoded = _field_len(_key_value(key, value))
        except Exception as exc:  # noqa: BLE001 - one bad attribute must not lose the span
            log.debug("llmlens: attribute %r not encodable: %r", key, exc)
            continue
        if cacheable:
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[(key, kind, value)] = encoded
        out.append(tag)
        out.append(encoded)
    return b"".join(out)


def _field_len(payload: bytes) -> bytes:
    return varint(len(payload)) + payload


def _trace_state(trace_state: Any) -> bytes:
    if not trace_state:
        return b""
    return _field(b"\x1a", ",".join(f"{k}={v}" for k, v in trace_state.items()).encode())


def _flags(parent: Any) -> int:
    if parent is not None and parent.is_remote:
        return _FLAGS_HAS_IS_REMOTE | _FLAGS_IS_REMOTE
    return _FLAGS_HAS_IS_REMOTE


def _events(events: Sequence[Any]) -> bytes:
    out = []
    for event in events:
        body = (b"\x09" + _pack_fixed64(event.timestamp) + _field(b"\x12", event.name.encode("utf-8", "replace"))
                + attributes_field(b"\x1a", event.attributes))
        dropped = getattr(event, "dropped_attributes", 0)
        if dropped:
            body += b"\x20" + varint(dropped)
        out.append(_field(b"\x5a", body))
    return b"".join(out)


def _links(links: Sequence[Any]) -> bytes:
    out = []
    for link in links:
        ctx = link.context
        body = (b"\x0a\x10" + ctx.trace_id.to_bytes(16, "big") + b"\x12\x08" + ctx.span_id.to_bytes(8, "big")
                + _trace_state(ctx.trace_state) + attributes_field(b"\x22", link.attributes))
        dropped = link.dropped_attributes
        if dropped:
            body += b"\x28" + varint(dropped)
        body += b"\x35" + _pack_fixed32(_flags(ctx))
        out.append(_field(b"\x6a", body))
    return b"".join(out)


def _status(status: Any) -> bytes:
    if status is None:
        return b""
    body = b""
    if status.description:
        body += _field(b"\x12", status.description.encode("utf-8", "replace"))
    code = status.status_code.value
    if code:
        body += b"\x18" + varint(code)
    return _field(b"\x7a", body)


def encode_span(span: Any) -> bytes:
    """One Span message (without its field tag)."""
    ctx = span.context
    parts = [b"\x0a\x10", ctx.trace_id.to_bytes(16, "big"), b"\x12\x08", ctx.span_id.to_bytes(8, "big")]
    if ctx.trace_state:
        parts.append(_trace_state(ctx.trace_state))
    parent = span.parent
    if parent is not None:
        parts.append(b"\x22\x08")
        parts.append(parent.span_id.to_bytes(8, "big"))
    parts.append(_field(b"\x2a", span.name.encode("utf-8", "replace")))
    parts.append(_KIND[span.kind.value])
    parts.append(b"\x39" + _pack_fixed64(span.start_time or 0))
    parts.append(b"\x41" + _pack_fixed64(span.end_time or 0))
    parts.append(attributes_field(b"\x4a", getattr(span, "_attributes", None) or span.attributes))
    dropped = span.dropped_attributes
    if dropped:
        parts.append(b"\x50" + varint(dropped))
    # ReadableSpan.events/.links copy into a new tuple on each read: test the SDK's lists first.
    if getattr(span, "_events", True) and span.events:
        parts.append(_events(span.events))
    if span.dropped_events:
        parts.append(b"\x60" + varint(span.dropped_events))
    if getattr(span, "_links", True) and span.links:
        parts.append(_links(span.links))
    if span.dropped_links:
        parts.append(b"\x70" + varint(span.dropped_links))
    parts.append(_status(span.status))
    parts.append(b"\x85\x01" + _pack_fixed32(_flags(parent)))
    return b"".join(parts)


# id(resource or scope) -> (the object, its encoded header): spans of one provider share both objects.
_header_cache: dict[int, tuple[Any, bytes]] = {}


def _once_per_object(obj: Any, encode: Callable[[Any], bytes]) -> bytes:
    cached = _header_cache.get(id(obj))
    if cached is not None and cached[0] is obj:
        return cached[1]
    encoded = encode(obj)
    if len(_header_cache) >= _CACHE_MAX:
        _header_cache.clear()
    _header_cache[id(obj)] = (obj, encoded)
    return encoded


def _resource_field(resource: Any) -> bytes:
    """ResourceSpans.resource (field 1)."""
    return _field(b"\x0a", attributes_field(b"\x0a", resource.attributes))


def _scope_field(scope: Any) -> bytes:
    """ScopeSpans.scope (field 1)."""
    body = b""
    if scope is not None:
        if scope.name:
            body += _field(b"\x0a", scope.name.encode())
        if scope.version:
            body += _field(b"\x12", scope.version.encode())
        body += attributes_field(b"\x1a", getattr(scope, "attributes", None))
    return _field(b"\x0a", body)


def encode_spans(spans: Sequence[Any]) -> bytes:
    """An ExportTraceServiceRequest for `spans`, grouped by resource, then by scope."""
    grouped: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    for span in spans:
        resource = span.resource
        scope = span.instrumentation_scope
        by_scope = grouped.get(id(resource))
        if by_scope is None:
            by_scope = grouped[id(resource)] = (resource, {})
        entry = by_scope[1].get(id(scope))
        if entry is None:
            entry = by_scope[1][id(scope)] = (scope, [])
        entry[1].append(_field(b"\x12", encode_span(span)))
    out = []
    for resource, scopes in grouped.values():
        body = [_once_per_object(resource, _resource_field)]
        for scope, encoded_spans in scopes.values():
            scope_body = _once_per_object(scope, _scope_field) + b"".join(encoded_spans)
            schema = getattr(scope, "schema_url", "") if scope is not None else ""
            if schema:
                scope_body += _field(b"\x1a", schema.encode())
            body.append(_field(b"\x12", scope_body))
        if resource.schema_url:
            body.append(_field(b"\x1a", resource.schema_url.encode()))
        out.append(_field(b"\x0a", b"".join(body)))
    return b"".join(out)
