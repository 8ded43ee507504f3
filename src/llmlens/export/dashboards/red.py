"""RED metrics and the service graph, over the Tempo-compatible families the llmlens server derives.

Rate, errors and duration come from traces_spanmetrics_* (labels service, span_name, span_kind,
status_code); the service graph from traces_service_graph_* (client, server, connection_type),
drawn by a node graph panel: its edges frame needs `id`, `source` and `target` fields, made in
PromQL (label_join) and by renaming columns, and Grafana derives the nodes from the edges.
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import common, nodegraph, table, timeseries
from grafana_foundation_sdk.models import common as common_model

from llmlens.export.panels import (
    PROMETHEUS,
    Layout,
    job_variable,
    label_variable,
    new_dashboard,
    prom,
    prometheus_variable,
    transformation,
    unit_override,
)

UID = "llmlens-red-service-graph"
SPANS = 'job=~"$job", service=~"$service"'
ENTRY = f'{SPANS}, span_kind=~"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"'
EDGES = 'job=~"$job"'
RATE = "[$__rate_interval]"
RANGE = "[$__range]"


def _calls(by: str, selector: str, window: str, extra: str = "") -> str:
    inner = f"{selector}, {extra}" if extra else selector
    return f"sum by ({by}) (rate(traces_spanmetrics_calls_total{{{inner}}}{window}))"


def _span_error_ratio(by: str, selector: str, window: str) -> str:
    total = _calls(by, selector, window)
    failed = _calls(by, selector, window, 'status_code="STATUS_CODE_ERROR"')
    return f"({failed} or {total} * 0) / {total}"


def _span_quantile(q: float, by: str, selector: str, window: str) -> str:
    return (f"histogram_quantile({q}, sum by (le, {by}) "
            f"(rate(traces_spanmetrics_latency_bucket{{{selector}}}{window})))")


def _edge_requests(window: str, by: str = "client, server") -> str:
    return f"sum by ({by}) (rate(traces_service_graph_request_total{{{EDGES}}}{window}))"


def _edge_error_ratio(window: str, by: str = "client, server") -> str:
    total = _edge_requests(window, by)
    failed = f"sum by ({by}) (rate(traces_service_graph_request_failed_total{{{EDGES}}}{window}))"
    return f"({failed} or {total} * 0) / {total}"


def _edge_id(expr: str) -> str:
    """The node graph's edge id: "client -> server"."""
    return f'label_join({expr}, "id", " -> ", "client", "server")'


def _timeseries(title: str, unit: str, description: str = "") -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).datasource(PROMETHEUS).unit(unit).fill_opacity(10)
             .legend(common.VizLegendOptions().show_legend(True)
                     .display_mode(common_model.LegendDisplayMode.LIST)
                     .placement(common_model.LegendPlacement.BOTTOM))
             .tooltip(common.VizTooltipOptions().mode(common_model.TooltipDisplayMode.MULTI)
                      .sort(common_model.SortOrder.DESCENDING)))
    return panel.description(description) if description else panel


def _merged_table(title: str, columns: dict[str, str], description: str) -> table.Panel:
    """A table joining instant queries A, B, C, ... on their labels; `columns` names their values."""
    return (table.Panel().title(title).datasource(PROMETHEUS).description(description)
            .with_transformation(transformation("merge"))
            .with_transformation(transformation("organize", {"excludeByName": {"Time": True},
                                                             "renameByName": columns})))


def red_and_service_graph(default_job: str) -> dict[str, Any]:
    dash = new_dashboard(UID, "RED and service graph (llmlens)",
                         "Rate, errors and duration of every service and operation, and the calls between "
                         "services, from the spans llmlens receives (Tempo's metric names).")
    dash.with_variable(prometheus_variable())
    dash.with_variable(job_variable("traces_spanmetrics_calls_total", default_job))
    dash.with_variable(label_variable("service", "Service", 'traces_spanmetrics_calls_total{job=~"$job"}',
                                      "service"))
    layout = Layout(dash)
    _red(layout)
    _operations(layout)
    _service_graph(layout)
    return layout.to_json()


def _red(layout: Layout) -> None:
    layout.row("Services (entry spans: server and consumer)")
    layout.panel(_timeseries("Rate", "reqps"), prom(_calls("service", ENTRY, RATE), "{{service}}"), width=8)
    layout.panel(_timeseries("Errors", "percentunit", "Share of entry spans with status ERROR."),
                 prom(_span_error_ratio("service", ENTRY, RATE), "{{service}}"), width=8)
    layout.panel(_timeseries("Duration p95", "s", "Dots are exemplars: click one to open its trace."),
                 prom(_span_quantile(0.95, "service", ENTRY, RATE), "{{service}}", exemplar=True), width=8)


def _operations(layout: Layout) -> None:
    layout.row("Operations")
    by = "service, span_name, span_kind"
    layout.panel(_merged_table("Operations over the time range",
                               {"Value #A": "calls/s", "Value #B": "error rate", "Value #C": "p50 (s)",
                                "Value #D": "p90 (s)", "Value #E": "p99 (s)"},
                               "Every span name of the selected services, any kind.")
                 .override_by_name("error rate", unit_override("percentunit")),
                 prom(f"sort_desc({_calls(by, SPANS, RANGE)})", instant=True, table=True),
                 prom(_span_error_ratio(by, SPANS, RANGE), instant=True, table=True),
                 prom(_span_quantile(0.5, by, SPANS, RANGE), instant=True, table=True),
                 prom(_span_quantile(0.9, by, SPANS, RANGE), instant=True, table=True),
                 prom(_span_quantile(0.99, by, SPANS, RANGE), instant=True, table=True),
                 width=24, height=10)


def _service_graph(layout: Layout) -> None:
    layout.row("Service graph")
    layout.panel(nodegraph.Panel().title("Service graph").datasource(PROMETHEUS)
                 .description("Calls between services over the time range: requests per second on each edge, "
                              "and the share that failed. Uninstrumented peers (an LLM API, a vector "
                              "database) appear as virtual nodes.")
                 .with_transformation(transformation("merge"))
                 .with_transformation(transformation("organize", {
                     "excludeByName": {"Time": True},
                     "renameByName": {"client": "source", "server": "target",
                                      "Value #A": "mainStat", "Value #B": "secondaryStat"}}))
                 .override_by_name("mainStat", unit_override("reqps"))
                 .override_by_name("secondaryStat", unit_override("percentunit")),
                 prom(_edge_id(_edge_requests(RANGE)), instant=True, table=True),
                 prom(_edge_id(_edge_error_ratio(RANGE)), instant=True, table=True),
                 width=14, height=12)
    by = "client, server, connection_type"
    layout.panel(_merged_table("Edges over the time range",
                               {"Value #A": "requests/s", "Value #B": "failed", "Value #C": "p95 server (s)"},
                               "Each pair of services; connection_type is 'database', 'messaging_system' or "
                               "'virtual_node' where it is not a plain call.")
                 .override_by_name("failed", unit_override("percentunit")),
                 prom(f"sort_desc({_edge_requests(RANGE, by)})", instant=True, table=True),
                 prom(_edge_error_ratio(RANGE, by), instant=True, table=True),
                 prom(f"histogram_quantile(0.95, sum by (le, {by}) "
                      f"(rate(traces_service_graph_request_server_seconds_bucket{{{EDGES}}}{RANGE})))",
                      instant=True, table=True),
                 width=10, height=12)
    layout.panel(_timeseries("Edge requests", "reqps"),
                 prom(_edge_requests(RATE), "{{client}} → {{server}}"), width=8)
    layout.panel(_timeseries("Edge failures", "reqps", "Calls where the client or the server span failed."),
                 prom("sum by (client, server) "
                      f"(rate(traces_service_graph_request_failed_total{{{EDGES}}}{RATE}))",
                      "{{client}} → {{server}}"),
                 width=8)
    layout.panel(_timeseries("Edge latency p95", "s",
                             "Server side (the callee's span) and client side (the caller's span)."),
                 prom(f"histogram_quantile(0.95, sum by (le, client, server) "
                      f"(rate(traces_service_graph_request_server_seconds_bucket{{{EDGES}}}{RATE})))",
                      "{{client}} → {{server}} server"),
                 prom(f"histogram_quantile(0.95, sum by (le, client, server) "
                      f"(rate(traces_service_graph_request_client_seconds_bucket{{{EDGES}}}{RATE})))",
                      "{{client}} → {{server}} client"),
                 width=8)
