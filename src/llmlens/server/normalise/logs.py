"""OTLP log records -> otel_logs rows (and score rows for gen_ai.evaluation.result events)."""

from __future__ import annotations

from typing import Any

from llmlens.server.decode.attributes import any_value, key_values, stored_string
from llmlens.server.normalise.cost import CostModel
from llmlens.server.normalise.masking import mask_batch
from llmlens.server.normalise.time_window import Bounds
from llmlens.server.store.batch import Batch

_SEVERITY_TEXT = {1: "TRACE", 5: "DEBUG", 9: "INFO", 13: "WARN", 17: "ERROR", 21: "FATAL"}


def normalise_logs(request: Any, cost: CostModel) -> Batch:
    batch = Batch()
    cols = batch.columns("otel_logs")
    bounds = cost.window.now() if cost.window is not None else None
    received = bounds.now if bounds is not None else 0
    for resource_logs in request.resource_logs:
        resource = key_values(resource_logs.resource.attributes)
        service = resource.get("service.name") or "unknown_service"
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope
            scope_attrs = key_values(scope.attributes)
            for record in scope_logs.log_records:
                # OTLP: the event's time when known, else when it was observed; a record with
                # neither was observed by this server, when it arrived.
                time_ns = record.time_unix_nano or record.observed_time_unix_nano or received
                problem = _invalid(record, time_ns, bounds)
                if problem:
                    batch.reject(problem)
                    continue
                attrs = key_values(record.attributes)
                body = stored_string(any_value(record.body)) if record.HasField("body") else ""
                number = record.severity_number
                cols["Timestamp"].append(time_ns)
                cols["TraceId"].append(record.trace_id.hex())
                cols["SpanId"].append(record.span_id.hex())
                cols["TraceFlags"].append(record.flags & 0xFF)
                cols["SeverityText"].append(record.severity_text or _severity_text(number))
                cols["SeverityNumber"].append(min(number, 255))
                cols["ServiceName"].append(service)
                cols["Body"].append(body)
                cols["ResourceSchemaUrl"].append(resource_logs.schema_url)
                cols["ResourceAttributes"].append(resource)
                cols["ScopeSchemaUrl"].append(scope_logs.schema_url)
                cols["ScopeName"].append(scope.name)
                cols["ScopeVersion"].append(scope.version)
                cols["ScopeAttributes"].append(scope_attrs)
                cols["LogAttributes"].append(attrs)
                cols["EventName"].append(getattr(record, "event_name", "") or attrs.get("event.name", ""))
                batch.accepted += 1
    if cost.mask is not None:
        mask_batch(batch, cost.mask)
    return batch


def _invalid(record: Any, time_ns: int, bounds: Bounds | None) -> str:
    if record.trace_id and len(record.trace_id) != 16:
        return "log record: trace_id must be empty or 16 bytes"
    if record.span_id and len(record.span_id) != 8:
        return "log record: span_id must be empty or 8 bytes"
    if not time_ns:
        return "log record: neither time_unix_nano nor observed_time_unix_nano is set"
    if bounds is not None and not bounds.earliest <= time_ns <= bounds.latest:
        which = "time" if record.time_unix_nano else "observed time"
        return bounds.check(time_ns, f"log record: {which}")
    return ""


def _severity_text(number: int) -> str:
    for floor in (21, 17, 13, 9, 5, 1):
        if number >= floor:
            return _SEVERITY_TEXT[floor]
    return ""
