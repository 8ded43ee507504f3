"""llmlens.configure_logging(): JSON logs that carry trace ids, masked, also exported over OTLP.

structlog and the stdlib `logging` module both end in one root handler that writes one JSON
object per line: timestamp, level, logger, event, trace_id, span_id and any bound fields.
After init(), records are also exported as OTLP log records (with trace context), masked the
same way as spans.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import IO, Any

from opentelemetry import trace

from llmlens.sdk import runtime

_handlers: list[logging.Handler] = []  # what configure_logging() put on the root logger
_PRIMITIVE = (str, int, float, bool)


def add_trace_ids(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict["trace_id"] = format(ctx.trace_id, "032x")
        event_dict["span_id"] = format(ctx.span_id, "016x")
    return event_dict


def _mask_processor(redactor: Any) -> Any:
    def mask(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        for key, value in event_dict.items():
            if key not in ("trace_id", "span_id", "timestamp", "level", "logger") and isinstance(value, str):
                event_dict[key] = redactor.redact(value)
        return event_dict

    return mask


_OWN_LOGGERS = ("opentelemetry", "llmlens.sdk", "urllib3", "grpc")


class OtlpLogHandler(logging.Handler):
    """Emits stdlib records (structlog's included) as OTel log records in the current trace context."""

    def __init__(self, provider: Any) -> None:
        super().__init__()
        self._provider = provider

    def emit(self, record: logging.LogRecord) -> None:
        # The exporters' own warnings ("failed to export ...") must not become records to
        # export: with the endpoint down, that loop keeps a flush from ever finishing.
        if record.name.startswith(_OWN_LOGGERS):
            return
        try:
            from opentelemetry._logs import LogRecord, SeverityNumber
            from opentelemetry.context import get_current

            if isinstance(record.msg, Mapping):  # structlog's event dict, already processed
                fields = dict(record.msg)
                body = str(fields.pop("event", ""))
            else:
                fields = {}
                body = record.getMessage()
            attributes: dict[str, Any] = {"logger.name": record.name}
            for key, value in fields.items():
                if key in ("timestamp", "level", "logger", "trace_id", "span_id", "_record", "_from_structlog"):
                    continue
                attributes[key] = value if isinstance(value, _PRIMITIVE) else repr(value)
            if record.exc_info and record.exc_info[0] is not None:
                attributes["exception.type"] = record.exc_info[0].__name__
            level = record.levelno
            severity = (SeverityNumber.ERROR if level >= logging.ERROR else SeverityNumber.WARN
                        if level >= logging.WARNING else SeverityNumber.INFO if level >= logging.INFO
                        else SeverityNumber.DEBUG)
            self._provider.get_logger(record.name).emit(LogRecord(
                timestamp=int(record.created * 1e9), context=get_current(), severity_text=record.levelname, severity_number=severity,
                body=body, attributes=attributes,
            ))
        except Exception:  # noqa: BLE001 - logging must never raise into the app
            self.handleError(record)


def _otlp_provider(rt: runtime.Runtime) -> Any:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    from llmlens.sdk.exporters import log_exporter
    from llmlens.sdk.masking import MaskingLogProcessor

    provider = LoggerProvider(resource=rt.resource if rt.resource is not None else Resource.create({}))
    if rt.redactor is not None:
        provider.add_log_record_processor(MaskingLogProcessor(rt.redactor))
    provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter(rt.config)))
    return provider


def configure_logging(level: int | str = logging.INFO, *, stream: IO[str] | None = None,
                      export: bool = True) -> None:
    """JSON logs on `stream` (default stderr) for structlog and stdlib logging; OTLP export after init()."""
    import structlog

    rt = runtime.active
    redactor = rt.redactor if rt is not None else None
    if redactor is None and (rt is None or rt.config.mask_pii):
        from llmlens.pii import Redactor

        redactor = Redactor()  # masking is on by default, also before init()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        add_trace_ids,
        structlog.processors.format_exc_info,
    ]
    if redactor is not None:
        shared.append(_mask_processor(redactor))
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.JSONRenderer()],
    )
    root = logging.getLogger()
    for handler in _handlers:
        root.removeHandler(handler)
    _handlers.clear()
    console = logging.StreamHandler(stream or sys.stderr)
    console.setFormatter(formatter)
    _handlers.append(console)
    if export and rt is not None:
        provider = _otlp_provider(rt)
        otlp = OtlpLogHandler(provider)
        otlp.setFormatter(formatter)  # runs the pre-chain on stdlib records (trace ids, masking)
        _handlers.append(otlp)
        rt.closers.append(lambda timeout_ms: _close_otlp(otlp, provider, timeout_ms))
    for handler in _handlers:
        root.addHandler(handler)
    root.setLevel(level)


def _close_otlp(handler: logging.Handler, provider: Any, timeout_ms: int) -> None:
    """Run by shutdown(): stop sending records to the log pipeline, then flush it."""
    logging.getLogger().removeHandler(handler)
    if handler in _handlers:
        _handlers.remove(handler)
    provider.force_flush(timeout_ms)
    provider.shutdown()
