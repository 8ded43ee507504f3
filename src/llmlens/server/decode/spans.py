"""OTLP trace requests as plain tuples: the one shape the trace normaliser reads.

Two readers produce it. `decode(body)` is the fast path: a C extension (`_otlp_spans.c`)
reads the protobuf bytes directly and returns None for anything it leaves to protobuf.
`from_message(request)` reads a parsed protobuf message (OTLP/JSON, and the bodies the fast
path declines). Both give, for each ResourceSpans:

    (resource attributes, [(scope name, scope version, [Span, ...]), ...])

with attribute dicts already in stored form (see attributes.py). If the extension was not
built (no C compiler at install) or is turned off, `decode` always returns None and everything
still works, only slower; `FAST_PATH` says which is in use.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from llmlens.server.decode import attributes
from llmlens.server.decode.attributes import key_values

try:
    from llmlens.server.decode import _otlp_spans
except ImportError:  # built without a C compiler: the protobuf path does everything
    _otlp_spans = None
# LLMLENS_SPAN_DECODER=protobuf turns the fast path off: to compare the two, or should it ever misread.
if os.environ.get("LLMLENS_SPAN_DECODER", "").strip().lower() == "protobuf":
    _otlp_spans = None


class Span(NamedTuple):
    """One span, ids as lowercase hex (empty if absent), enums as the ints on the wire."""

    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    attributes: dict[str, str]
    events: list[tuple[int, str, dict[str, str]]] | None  # (time ns, name, attributes); None if none
    links: list[tuple[str, str, str, dict[str, str]]] | None  # (trace id, span id, trace state, attributes)


Scope = tuple[str, str, list[Span]]
Resource = tuple[dict[str, str], list[Scope]]

FAST_PATH = _otlp_spans is not None
if _otlp_spans is not None:
    _otlp_spans.configure(attributes.stored_string, attributes.cap_lengths, attributes.DROPPED_KEY,
                          attributes.MAX_ATTRIBUTES, attributes.MAX_KEY_CHARS, attributes.MAX_VALUE_CHARS,
                          attributes.MAX_DEPTH)


def decode(body: bytes) -> list[Resource] | None:
    """The spans of an ExportTraceServiceRequest body, or None: parse it with protobuf instead."""
    if _otlp_spans is None:
        return None
    return _otlp_spans.decode(body)  # spans as plain tuples laid out as Span (equal to one, cheaper)


def from_message(request: Any) -> list[Resource]:
    """The spans of a parsed ExportTraceServiceRequest."""
    return [
        (key_values(rs.resource.attributes),
         [(ss.scope.name, ss.scope.version, [_span(span) for span in ss.spans]) for ss in rs.scope_spans])
        for rs in request.resource_spans
    ]


def _span(span: Any) -> Span:
    status = span.status
    events = span.events
    links = span.links
    return Span(
        span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(), span.trace_state, span.name, span.kind,
        span.start_time_unix_nano, span.end_time_unix_nano, status.code, status.message, key_values(span.attributes),
        [(e.time_unix_nano, e.name, key_values(e.attributes)) for e in events] if events else None,
        [(link.trace_id.hex(), link.span_id.hex(), link.trace_state, key_values(link.attributes)) for link in links]
        if links else None,
    )
