"""The LLM overview: the panels of the llmlens UI's overview page, over the llm_* families.

The llm_* families carry the same names and labels whether the llmlens server derives them from
spans or an app's SDK serves them in-process, so this dashboard works on either; `$job` picks
one source. A last row reads the OpenTelemetry GenAI families, which only the server exposes.
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import bargauge, common, heatmap, piechart, stat, table, timeseries
from grafana_foundation_sdk.models import common as common_model

from llmlens.export.panels import (
    PROMETHEUS,
    Layout,
    job_variable,
    label_variable,
    new_dashboard,
    prom,
    prometheus_variable,
    right_axis,
    transformation,
)

UID = "llmlens-llm-overview"
LLM = 'job=~"$job", model=~"$model"'
GENAI = 'job=~"$job", gen_ai_request_model=~"$model"'
BY_MODEL = "gen_ai_request_model"
RATE = "[$__rate_interval]"
RANGE = "[$__range]"


def _quantile(q: float, metric: str, by: str = "", selector: str = LLM, window: str = RATE) -> str:
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{selector}}}{window})))"


def _error_ratio(by: str = "", window: str = RATE) -> str:
    """Failed over all calls; 0 rather than no data where nothing failed."""
    group = f" by ({by})" if by else ""
    total = f"sum{group} (rate(llm_requests_total{{{LLM}}}{window}))"
    failed = f'sum{group} (rate(llm_requests_total{{{LLM}, status="error"}}{window}))'
    return f"({failed} or {total} * 0) / {total}"


def _stat(title: str, unit: str, description: str = "") -> stat.Panel:
    panel = (stat.Panel().title(title).datasource(PROMETHEUS).unit(unit)
             .graph_mode(common_model.BigValueGraphMode.NONE)
             .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"])))
    return panel.description(description) if description else panel


def _timeseries(title: str, unit: str, description: str = "") -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).datasource(PROMETHEUS).unit(unit).fill_opacity(10)
             .legend(common.VizLegendOptions().show_legend(True)
                     .display_mode(common_model.LegendDisplayMode.LIST)
                     .placement(common_model.LegendPlacement.BOTTOM))
             .tooltip(common.VizTooltipOptions().mode(common_model.TooltipDisplayMode.MULTI)
                      .sort(common_model.SortOrder.DESCENDING)))
    return panel.description(description) if description else panel


def llm_overview(default_job: str) -> dict[str, Any]:
    dash = new_dashboard(UID, "LLM overview (llmlens)",
                         "Requests, cost, latency, time to first token, tokens and errors of LLM calls.")
    dash.with_variable(prometheus_variable())
    dash.with_variable(job_variable("llm_requests_total", default_job))
    dash.with_variable(label_variable("model", "Model", 'llm_requests_total{job=~"$job"}', "model"))
    layout = Layout(dash)
    _totals(layout)
    _charts(layout)
    _breakdowns(layout)
    _genai(layout)
    return layout.to_json()


def _totals(layout: Layout) -> None:
    layout.row("Totals over the time range")
    h = 4
    layout.panel(_stat("Request rate", "reqps"),
                 prom(f"sum(rate(llm_requests_total{{{LLM}}}{RANGE}))", instant=True), width=4, height=h)
    layout.panel(_stat("Total cost", "currencyUSD", "Priced calls; unpriced calls are counted beside it."),
                 prom(f"sum(increase(llm_cost_dollars_total{{{LLM}}}{RANGE}))", instant=True),
                 width=4, height=h)
    layout.panel(_stat("Unpriced calls", "short", "Successful calls whose model has no price: their cost is "
                       "missing from the total."),
                 prom(f"sum(increase(llm_unpriced_requests_total{{{LLM}}}{RANGE}))", instant=True),
                 width=4, height=h)
    layout.panel(_stat("Successful", "short"),
                 prom(f'sum(increase(llm_requests_total{{{LLM}, status="ok"}}{RANGE}))', instant=True),
                 width=4, height=h)
    layout.panel(_stat("Failed", "short"),
                 prom(f'sum(increase(llm_requests_total{{{LLM}, status="error"}}{RANGE}))', instant=True),
                 width=4, height=h)
    layout.panel(_stat("Error rate", "percentunit"), prom(_error_ratio(window=RANGE), instant=True),
                 width=4, height=h)
    layout.panel(_stat("Models in use", "short"),
                 prom(f"count(sum by (model) (increase(llm_requests_total{{{LLM}}}{RANGE})) > 0)",
                      instant=True),
                 width=4, height=h)
    layout.panel(_stat("Latency p95", "s"),
                 prom(_quantile(0.95, "llm_request_duration_seconds", window=RANGE), instant=True),
                 width=4, height=h)
    layout.panel(_stat("Time to first token p50", "s", "Streamed calls only."),
                 prom(_quantile(0.5, "llm_time_to_first_token_seconds", window=RANGE), instant=True),
                 width=4, height=h)
    layout.panel(_stat("Output tokens/s", "short", "Output tokens of all calls per second of the range."),
                 prom(f'sum(rate(llm_tokens_total{{{LLM}, direction="output"}}{RANGE}))', instant=True),
                 width=4, height=h)
    layout.panel(_stat("Tokens in / out", "short"),
                 prom(f"sum by (direction) (increase(llm_tokens_total{{{LLM}}}{RANGE}))", "{{direction}}",
                      instant=True),
                 width=8, height=h)


def _charts(layout: Layout) -> None:
    layout.row("Over time")
    layout.panel(_timeseries("Latency p50 / p95 / p99", "s",
                             "Dots are exemplars: click one to open its trace in llmlens."),
                 prom(_quantile(0.5, "llm_request_duration_seconds"), "p50"),
                 prom(_quantile(0.95, "llm_request_duration_seconds"), "p95", exemplar=True),
                 prom(_quantile(0.99, "llm_request_duration_seconds"), "p99"),
                 width=12)
    layout.panel(_timeseries("Time to first token", "s", "Streamed calls only."),
                 prom(_quantile(0.5, "llm_time_to_first_token_seconds"), "p50"),
                 prom(_quantile(0.95, "llm_time_to_first_token_seconds"), "p95", exemplar=True),
                 width=12)
    layout.panel(_timeseries("Request volume: successes and failures", "reqps"),
                 prom(f"sum by (status) (rate(llm_requests_total{{{LLM}}}{RATE}))", "{{status}}"),
                 width=8)
    layout.panel(_timeseries("Error rate", "percentunit"),
                 prom(_error_ratio("model"), "{{model}}"), width=8)
    layout.panel(_timeseries("Output tokens per second", "short"),
                 prom(f'sum by (model) (rate(llm_tokens_total{{{LLM}, direction="output"}}{RATE}))',
                      "{{model}}"),
                 width=8)
    layout.panel(_timeseries("Tokens in / out", "short"),
                 prom(f"sum by (direction) (rate(llm_tokens_total{{{LLM}}}{RATE}))",
                      "{{direction}} tokens/s"),
                 width=8)
    layout.panel(_timeseries("Tokens versus cost", "short", "Tokens per second (left), $ per hour (right).")
                 .override_by_query("B", right_axis("currencyUSD")),
                 prom(f"sum(rate(llm_tokens_total{{{LLM}}}{RATE}))", "tokens/s"),
                 prom(f"sum(rate(llm_cost_dollars_total{{{LLM}}}{RATE})) * 3600", "$/hour"),
                 width=8)
    layout.panel(heatmap.Panel().title("Request duration distribution").datasource(PROMETHEUS)
                 .description("Calls per duration bucket over time."),
                 prom(f"sum by (le) (increase(llm_request_duration_seconds_bucket{{{LLM}}}{RATE}))", "{{le}}",
                      heatmap=True),
                 width=8)


def _breakdowns(layout: Layout) -> None:
    layout.row("Breakdowns over the time range")
    layout.panel(piechart.Panel().title("Models in use (share of requests)").datasource(PROMETHEUS)
                 .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"])),
                 prom(f"sum by (model) (increase(llm_requests_total{{{LLM}}}{RANGE}))", "{{model}}",
                      instant=True),
                 width=6)
    layout.panel(bargauge.Panel().title("Top error types").datasource(PROMETHEUS).unit("short")
                 .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"])),
                 prom(f"topk(10, sum by (error_type) (increase(llm_errors_total{{{LLM}}}{RANGE})))",
                      "{{error_type}}", instant=True),
                 width=6)
    layout.panel(table.Panel().title("Cost by department and app").datasource(PROMETHEUS).unit("currencyUSD")
                 .with_transformation(transformation("organize", {"excludeByName": {"Time": True},
                                                                  "renameByName": {"Value": "cost"}})),
                 prom("sort_desc(sum by (department, app) "
                      f"(increase(llm_cost_dollars_total{{{LLM}}}{RANGE})))", instant=True, table=True),
                 width=6)
    layout.panel(bargauge.Panel().title("Quality scores (last recorded)").datasource(PROMETHEUS)
                 .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"])),
                 prom('avg by (app, name) (llm_quality_score{job=~"$job"})', "{{app}} {{name}}",
                      instant=True),
                 width=6)


def _genai(layout: Layout) -> None:
    layout.row("OpenTelemetry GenAI metrics (llmlens server only)")
    layout.panel(_timeseries("Operation duration p95 by model", "s",
                             "gen_ai.client.operation.duration; dots are exemplars linking to the trace."),
                 prom(_quantile(0.95, "gen_ai_client_operation_duration_seconds", BY_MODEL, GENAI),
                      "{{gen_ai_request_model}}", exemplar=True),
                 width=6)
    layout.panel(_timeseries("Time to first chunk p95 by model", "s",
                             "gen_ai.client.operation.time_to_first_chunk, streamed calls."),
                 prom(_quantile(0.95, "gen_ai_client_operation_time_to_first_chunk_seconds", BY_MODEL, GENAI),
                      "{{gen_ai_request_model}}", exemplar=True),
                 width=6)
    layout.panel(_timeseries("Operations by service", "reqps"),
                 prom(f"sum by (service_name, gen_ai_operation_name) "
                      f"(rate(gen_ai_client_operation_duration_seconds_count{{{GENAI}}}{RATE}))",
                      "{{service_name}} {{gen_ai_operation_name}}"),
                 width=6)
    layout.panel(_timeseries("Average tokens per operation", "short"),
                 prom(f"sum by (gen_ai_token_type) (rate(gen_ai_client_token_usage_sum{{{GENAI}}}{RATE})) / "
                      f"sum by (gen_ai_token_type) (rate(gen_ai_client_token_usage_count{{{GENAI}}}{RATE}))",
                      "{{gen_ai_token_type}}"),
                 width=6)
