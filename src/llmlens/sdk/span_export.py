"""OTLP/HTTP span export with llmlens's own protobuf encoder (see otlp_encoding for why).

It behaves like the OpenTelemetry HTTP exporter users know: the environment variables
`OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`, `_COMPRESSION` (gzip | deflate | none) and
`_CERTIFICATE` are honoured; 429, 502, 503, 504 and connection errors are retried with
exponential backoff and jitter (a `Retry-After` is honoured) while the export timeout
allows; any other answer fails the batch. A failure is logged once as a warning, then at
debug level until an export succeeds again, so an unreachable collector does not flood the
app's log. Spans the receiver rejects (OTLP partial success) are logged the same way.
It runs on the batch processor's thread: nothing here is on an instrumented call's path.
"""

from __future__ import annotations

import gzip
import logging
import os
import random
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote

import requests
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from llmlens import __version__
from llmlens.sdk.otlp_encoding import encode_spans

log = logging.getLogger("llmlens.sdk")

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
MAX_ATTEMPTS = 6
JITTER = 0.2
COMPRESSIONS = ("none", "gzip", "deflate")


def _env(signal: str, name: str) -> str | None:
    """`OTEL_EXPORTER_OTLP_{SIGNAL}_{NAME}`, else `OTEL_EXPORTER_OTLP_{NAME}`."""
    value = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_{name}") or os.environ.get(
        f"OTEL_EXPORTER_OTLP_{name}")
    return value.strip() if value and value.strip() else None


def parse_headers(raw: str | None) -> dict[str, str]:
    """The OTel spec's header list: `key1=value1,key2=value2`, values URL-encoded."""
    headers: dict[str, str] = {}
    for item in (raw or "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            headers[unquote(key.strip()).lower()] = unquote(value.strip())
        elif item.strip():
            log.warning("llmlens: ignoring malformed OTLP header entry %r", item.strip())
    return headers


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now, or None."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None


class OtlpHttpSpanExporter(SpanExporter):
    def __init__(self, endpoint: str, headers: Mapping[str, str] | None = None, timeout_s: float = 10.0,
                 compression: str | None = None) -> None:
        self._endpoint = endpoint
        self._timeout_s = timeout_s
        compression = (compression or _env("traces", "COMPRESSION") or "none").lower()
        if compression not in COMPRESSIONS:
            log.warning("llmlens: unknown OTLP compression %r; sending uncompressed", compression)
            compression = "none"
        self._compression = compression
        session = requests.Session()
        session.headers.update({"content-type": "application/x-protobuf", "user-agent": f"llmlens/{__version__}"})
        if compression != "none":
            session.headers["content-encoding"] = compression
        session.headers.update(parse_headers(_env("traces", "HEADERS")))
        session.headers.update({k.lower(): v for k, v in (headers or {}).items()})  # arguments win
        certificate = _env("traces", "CERTIFICATE")
        if certificate:
            session.verify = certificate
        self._session = session
        self._stopped = threading.Event()
        self._failing = False

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        if self._stopped.is_set():
            return SpanExportResult.FAILURE
        try:
            body = encode_spans(spans)
        except Exception as exc:  # noqa: BLE001 - a bad batch must not stop the export thread
            log.warning("llmlens: could not encode %d spans: %r", len(spans), exc)
            return SpanExportResult.FAILURE
        if self._compression == "gzip":
            body = gzip.compress(body, compresslevel=6, mtime=0)
        elif self._compression == "deflate":
            body = zlib.compress(body)
        return self._send(body, len(spans))

    def _send(self, body: bytes, n_spans: int) -> SpanExportResult:
        deadline = time.monotonic() + self._timeout_s
        error = "no attempt"
        for attempt in range(MAX_ATTEMPTS):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            wait: float | None = None
            try:
                response = self._session.post(self._endpoint, data=body, timeout=remaining)
            except requests.RequestException as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    self._accepted(response, n_spans)
                    return SpanExportResult.SUCCESS
                error = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code not in RETRYABLE_STATUS:
                    break
                wait = retry_after_seconds(response.headers.get("retry-after"))
            if wait is None:
                wait = 2 ** attempt * random.uniform(1 - JITTER, 1 + JITTER)
            if time.monotonic() + wait > deadline or self._stopped.wait(wait):
                break
        self._failed(f"{n_spans} spans to {self._endpoint} dropped ({error})")
        return SpanExportResult.FAILURE

    def _accepted(self, response: requests.Response, n_spans: int) -> None:
        if self._failing:
            self._failing = False
            log.info("llmlens: exporting spans to %s works again", self._endpoint)
        if response.content and response.headers.get("content-type", "").startswith("application/x-protobuf"):
            rejected, message = _partial_success(response.content)
            if rejected:
                log.warning("llmlens: the receiver rejected %d of %d spans: %s", rejected, n_spans, message)

    def _failed(self, message: str) -> None:
        (log.debug if self._failing else log.warning)("llmlens: %s", message)
        self._failing = True

    def shutdown(self) -> None:
        self._stopped.set()
        self._session.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # nothing is buffered here


def _partial_success(content: bytes) -> tuple[int, str]:
    try:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        answer = ExportTraceServiceResponse.FromString(content)
    except Exception:  # noqa: BLE001 - an odd answer body is not worth failing a delivered batch
        return 0, ""
    return answer.partial_success.rejected_spans, answer.partial_success.error_message
