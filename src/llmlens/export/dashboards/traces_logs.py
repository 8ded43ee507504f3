"""Traces, LLM calls and logs, read straight from the store's ClickHouse tables.

Grafana's ClickHouse data source queries the tables llmlens writes: otel_traces and otel_logs
(the OpenTelemetry Collector exporter's layout), llm_calls (one row per model call) and
trace_index (one row per trace). The SQL uses the plugin's macros ($__timeFilter, $__fromTime,
$__toTime, $__timeInterval, $__conditionalAll). Trace ids link to the trace's page in llmlens.
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import common, dashboard, logs, table, timeseries
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model

from llmlens.export.panels import (
    CLICKHOUSE,
    ClickHouseQuery,
    Layout,
    clickhouse_variable,
    link_to_trace,
    new_dashboard,
)

UID = "llmlens-traces-logs"
SERVICE_FILTER = "$__conditionalAll(ServiceName IN (${service:singlequote}), $service)"

SPANS_PER_SERVICE = f"""
SELECT $__timeInterval(Timestamp) AS time, ServiceName, count() / $__interval_s AS spans_per_s
FROM otel_traces
WHERE $__timeFilter(Timestamp) AND {SERVICE_FILTER}
GROUP BY time, ServiceName ORDER BY time
"""

ERROR_SPANS_PER_SERVICE = f"""
SELECT $__timeInterval(Timestamp) AS time, ServiceName, count() / $__interval_s AS errors_per_s
FROM otel_traces
WHERE $__timeFilter(Timestamp) AND StatusCode = 'Error' AND {SERVICE_FILTER}
GROUP BY time, ServiceName ORDER BY time
"""

# trace_index holds partial rows per trace until merges: aggregate them, as llmlens's own list does.
TRACES = """
SELECT TraceId AS trace_id, min(Start) AS start, max(RootService) AS service, max(RootName) AS root_span,
       (toUnixTimestamp64Nano(max(End)) - toUnixTimestamp64Nano(min(Start))) / 1e6 AS duration_ms,
       sum(SpanCount) AS spans, sum(ErrorCount) AS errors, sum(LlmCalls) AS llm_calls,
       sum(InputTokens) AS input_tokens, sum(OutputTokens) AS output_tokens, sum(CostUsd) AS cost_usd
FROM trace_index
WHERE Day >= toDate($__fromTime) - 1 AND Day <= toDate($__toTime)
GROUP BY TraceId
HAVING $__timeFilter(start) AND $__conditionalAll(service IN (${service:singlequote}), $service)
ORDER BY start DESC LIMIT 200
"""

LLM_CALLS = f"""
SELECT Timestamp AS time, ServiceName AS service, Operation AS operation, RequestModel AS model,
       InputTokens AS input_tokens, OutputTokens AS output_tokens, CostUsd AS cost_usd,
       Duration / 1e6 AS duration_ms, TtftMs AS ttft_ms, ErrorType AS error_type, TraceId AS trace_id
FROM llm_calls
WHERE $__timeFilter(Timestamp) AND {SERVICE_FILTER}
ORDER BY Timestamp DESC LIMIT 200
"""

LOGS = f"""
SELECT Timestamp AS timestamp, Body AS body, SeverityText AS level, ServiceName AS service,
       TraceId AS trace_id, SpanId AS span_id
FROM otel_logs
WHERE $__timeFilter(TimestampTime) AND {SERVICE_FILTER}
  AND (${{trace_id:sqlstring}} = '' OR TraceId = ${{trace_id:sqlstring}})
ORDER BY Timestamp DESC LIMIT 1000
"""

SERVICES = """
SELECT DISTINCT ServiceName FROM otel_traces WHERE $__timeFilter(Timestamp) ORDER BY ServiceName
"""


def _timeseries(title: str, unit: str) -> timeseries.Panel:
    return (timeseries.Panel().title(title).datasource(CLICKHOUSE).unit(unit).fill_opacity(10)
            .legend(common.VizLegendOptions().show_legend(True)
                    .display_mode(common_model.LegendDisplayMode.LIST)
                    .placement(common_model.LegendPlacement.BOTTOM)))


def traces_and_logs(llmlens_url: str) -> dict[str, Any]:
    dash = new_dashboard(UID, "Traces and logs (llmlens, ClickHouse)",
                         "Traces, LLM calls and logs from the llmlens store through Grafana's ClickHouse "
                         "data source. Trace ids open the trace in llmlens.")
    dash.with_variable(clickhouse_variable())
    dash.with_variable(dashboard.ConstantVariable("llmlens_url").label("llmlens URL").value(llmlens_url)
                       .description("Where trace links point (llmlens export grafana --llmlens-url)."))
    dash.with_variable(dashboard.QueryVariable("service").label("Service").datasource(CLICKHOUSE)
                       .query(" ".join(SERVICES.split()))
                       .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
                       .multi(True).include_all(True)
                       .current(model.VariableOption(selected=True, text="All", value="$__all")))
    dash.with_variable(dashboard.TextBoxVariable("trace_id").label("Trace id (logs)")
                       .description("Show only the logs of this trace; empty for all."))
    layout = Layout(dash)
    layout.row("Spans")
    layout.panel(_timeseries("Spans per second by service", "short"),
                 ClickHouseQuery(SPANS_PER_SERVICE, "timeseries"), width=12)
    layout.panel(_timeseries("Error spans per second by service", "short"),
                 ClickHouseQuery(ERROR_SPANS_PER_SERVICE, "timeseries"), width=12)
    layout.row("Traces and LLM calls")
    layout.panel(table.Panel().title("Traces").datasource(CLICKHOUSE)
                 .description("Newest first, by root service; click a trace id to open it in llmlens.")
                 .override_by_name(*link_to_trace("trace_id")),
                 ClickHouseQuery(TRACES, "table"), width=24, height=10)
    layout.panel(table.Panel().title("LLM calls").datasource(CLICKHOUSE)
                 .description("Newest first; click a trace id to open its trace in llmlens.")
                 .override_by_name(*link_to_trace("trace_id")),
                 ClickHouseQuery(LLM_CALLS, "table"), width=24, height=10)
    layout.row("Logs")
    layout.panel(logs.Panel().title("Logs").datasource(CLICKHOUSE).show_time(True).wrap_log_message(True)
                 .sort_order(common_model.LogsSortOrder.DESCENDING),
                 ClickHouseQuery(LOGS, "logs"), width=24, height=12)
    return layout.to_json()
