"""Where to look into an alert: the traces and the Overview filtered to its group and window.

The Alerts page links each alert to the Traces page (a trace query in the UI's TraceQL-like
language) and to the Overview (its filters), both over the time the alert covers: from one
window before the condition started to hold (the rows that first crossed the threshold), or
from the start of the budget period for budgets and forecasts, until now.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from llmlens.server.alerts.catalogue import Source
from llmlens.server.alerts.periods import period_bounds
from llmlens.server.alerts.rules import Rule

# Rule filter/group keys -> fields of the trace query language (server/query/traceql.py), by source.
_TRACE_FIELDS: dict[Source, dict[str, str]] = {
    Source.LLM: {"service": "service", "model": "model", "provider": "span.gen_ai.provider.name", "app": "app",
                 "department": "department", "user": "user", "operation": "span.gen_ai.operation.name",
                 "span_name": "name", "error_type": "errorType"},
    Source.SPANS: {"service": "service", "span_name": "name", "span_kind": "kind"},
    Source.SCORES: {"service": "service", "app": "app"},  # a score's name is no field of a span
}
OVERVIEW_FILTERS = ("service", "app", "department", "model")  # the Overview page's filters
_ERROR_SIGNALS = frozenset({"error_rate", "error_count", "span_error_rate"})
_FALLBACK_WINDOW_S = 3600


def _quote(value: str) -> str:
    """A string literal of the trace query language (double quotes, backslash escapes)."""
    return json.dumps(value, ensure_ascii=False)


def trace_query(rule: Rule, labels: dict[str, str]) -> str:
    """The spans behind one group of a rule, as a trace query (`{ model = "x" && status = error }`)."""
    measured = rule.measured
    fields = _TRACE_FIELDS[measured.source]
    conditions = []
    for key, value in {**rule.filters, **labels}.items():
        field = fields.get(key)
        if field == "kind":
            conditions.append(f"kind = {value.lower()}")
        elif field:
            conditions.append(f"{field} = {_quote(value)}")
    if rule.error_type and "error_type" not in labels:
        conditions.append(f"errorType = {_quote(rule.error_type)}")
    if measured.name in _ERROR_SIGNALS:
        conditions.append("status = error")
    if not conditions and measured.source is Source.LLM:
        conditions.append('model =~ ".+"')  # the traces with LLM calls
    return "{ " + " && ".join(conditions) + " }" if conditions else "{ }"


def window_start(rule: Rule, active_at: datetime, tz: ZoneInfo) -> datetime:
    """Where the rows behind an alert begin: its period's start, or one window before it began."""
    if rule.period is not None:
        return period_bounds(rule.period, active_at, tz)[0]
    return active_at - timedelta(seconds=rule.window_s or _FALLBACK_WINDOW_S)


def explore(rule: Rule, labels: dict[str, str], active_at: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """What the UI's links of one alert carry: the trace query, the Overview's filters, the start."""
    values = {**rule.filters, **labels}
    start = window_start(rule, active_at, tz).astimezone(UTC)
    return {"traces_query": trace_query(rule, labels),
            "overview_filters": {k: values[k] for k in OVERVIEW_FILTERS if values.get(k)},
            "start": start.strftime("%Y-%m-%dT%H:%M:%SZ")}
