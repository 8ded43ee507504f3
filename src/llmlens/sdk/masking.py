"""PII masking of everything the SDK exports: span names, attributes, events, links and status
messages, and log records.

Spans are masked in an exporter wrapper, i.e. on the export thread, never on the caller's;
a span is copied only when something in it changed. Attributes that carry no free text
(model names, token counts, ids...) are skipped, which keeps masking cheap when content
capture is off. Log records are masked by a log processor placed before the batch exporter.
The rule is llmlens.pii's, the server's too: attributes are read with their key, so the
addresses of servers (`server.address`, the host of `http.url`) stay and end users' go; on a
server span the peer (`net.peer.ip`, `network.peer.address`) is the caller, so it goes too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, SpanKind, Status

from llmlens import semconv

# Attributes that never hold free text; everything else of string type is scanned.
SAFE_KEYS = frozenset({
    semconv.OPERATION, semconv.PROVIDER, semconv.REQUEST_MODEL, semconv.RESPONSE_MODEL, semconv.FINISH_REASONS,
    semconv.ERROR_TYPE, semconv.LLMLENS_SPAN_KIND, semconv.LLMLENS_APP, semconv.LLMLENS_DEPARTMENT,
    "gen_ai.response.id", "server.address", "openai.api", "http.request.method", "http.method", "url.scheme",
    "exception.type", "code.function.name", "code.file.path", "gen_ai.tool.name", "gen_ai.agent.name",
})


_TEXT_TYPES = (str, list, tuple)
# Span names repeat ("chat gpt-4o-mini"): each distinct name is redacted once.
_NAME_CACHE_MAX = 4096


def mask_mapping(redactor: Any, attributes: Mapping[str, Any] | None,
                 inbound: bool = False) -> dict[str, Any] | None:
    """Masked copy of an attribute mapping, or None when nothing needed masking. `inbound`: the
    attributes of a server span (its peer is the caller)."""
    if not attributes:
        return None
    # The SDK's BoundedAttributes reads through Mapping's generic methods and a lock; its plain
    # dict is read directly (as otlp_encoding does: the span has ended, nothing writes it).
    plain = getattr(attributes, "_dict", attributes)
    candidates = {k: v for k, v in plain.items() if k not in SAFE_KEYS and isinstance(v, _TEXT_TYPES)}
    if not candidates:
        return None
    masked = redactor.redact_attributes(candidates, inbound=inbound)
    if masked == candidates:
        return None
    out = dict(attributes)
    for key in candidates:
        if key in masked:
            out[key] = masked[key]
        else:
            del out[key]  # drop mode
    return out


def _masked_events(redactor: Any, events: Sequence[Event]) -> list[Event] | None:
    changed = False
    out = []
    for event in events:
        attrs = mask_mapping(redactor, event.attributes)
        name = redactor.redact(event.name)
        if attrs is None and name == event.name:
            out.append(event)
        else:
            changed = True
            out.append(Event(name, attrs if attrs is not None else event.attributes, event.timestamp))
    return out if changed else None


def _masked_links(redactor: Any, links: Sequence[Link]) -> list[Link] | None:
    masked = [mask_mapping(redactor, link.attributes) for link in links]
    if all(attrs is None for attrs in masked):
        return None
    return [link if attrs is None else Link(link.context, attrs) for link, attrs in zip(links, masked, strict=True)]


def mask_span(redactor: Any, span: ReadableSpan, names: dict[str, str] | None = None) -> ReadableSpan:
    """`span`, or a copy with its free text masked. `names`: a cache of redacted span names."""
    attrs = mask_mapping(redactor, getattr(span, "_attributes", None) or span.attributes,
                         inbound=span.kind is SpanKind.SERVER)
    # ReadableSpan.events/.links copy into a new tuple on each read: test the lists first.
    events = _masked_events(redactor, span.events) if getattr(span, "_events", True) else None
    links = _masked_links(redactor, span.links) if getattr(span, "_links", True) else None
    name = names.get(span.name) if names is not None else None
    if name is None:
        name = redactor.redact(span.name)
        if names is not None:
            if len(names) >= _NAME_CACHE_MAX:
                names.clear()
            names[span.name] = name
    status = span.status
    description = status.description
    masked_description = redactor.redact(description) if description else description
    if attrs is None and events is None and links is None and name == span.name \
            and masked_description == description:
        return span
    return ReadableSpan(
        name=name, context=span.context, parent=span.parent, resource=span.resource,
        attributes=attrs if attrs is not None else span.attributes,
        events=events if events is not None else span.events, links=links if links is not None else span.links,
        kind=span.kind,
        status=Status(status.status_code, masked_description) if masked_description != description else status,
        start_time=span.start_time, end_time=span.end_time, instrumentation_scope=span.instrumentation_scope,
    )


class MaskingSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, redactor: Any) -> None:
        self._inner = inner
        self._redactor = redactor
        self._names: dict[str, str] = {}

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        redactor, names = self._redactor, self._names
        return self._inner.export([mask_span(redactor, s, names) for s in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class MaskingLogProcessor(LogRecordProcessor):
    """Masks a log record's body and attributes in place, before later processors see it."""

    def __init__(self, redactor: Any) -> None:
        self._redactor = redactor

    def on_emit(self, log_record: Any) -> None:
        record = getattr(log_record, "log_record", log_record)
        if isinstance(record.body, str | dict | list):
            record.body = self._redactor.redact_value(record.body)
        attrs = mask_mapping(self._redactor, record.attributes)
        if attrs is not None:
            record.attributes = attrs

    def emit(self, log_record: Any) -> None:  # name used by older SDKs
        self.on_emit(log_record)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
