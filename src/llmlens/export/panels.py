"""A thin layer over grafana-foundation-sdk shared by the exported dashboards.

It holds what every dashboard repeats: the data source variables, the `$job` variable that keeps
an app scraped beside the server from being counted twice, Prometheus and ClickHouse targets
with their refIds, and a layout that numbers panels and flows them left to right in rows of 24
columns. The SDK has no builder for Grafana's ClickHouse plugin, so its targets go through cog's
`UnknownDataquery`, which serialises the plugin's query JSON unchanged.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

# The SDK warns at import that its v2 dashboard schema is preferred. The classic schema is the
# one file provisioning and every Grafana release read (v2 needs Grafana 12 and a feature flag).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from grafana_foundation_sdk.builders import dashboard as dashboards
    from grafana_foundation_sdk.builders import prometheus
    from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.runtime import UnknownDataquery
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

# The provisioned data sources (see grafana.py); dashboards reach them through variables, so a
# dashboard imported into a Grafana whose data sources have other uids still works.
PROMETHEUS_UID = "llmlens-prometheus"
PROMETHEUS_NAME = "llmlens Prometheus"
CLICKHOUSE_UID = "llmlens-clickhouse"
CLICKHOUSE_NAME = "llmlens ClickHouse"
CLICKHOUSE_PLUGIN = "grafana-clickhouse-datasource"

PROMETHEUS = common.DataSourceRef(type_val="prometheus", uid="${prometheus}")
CLICKHOUSE = common.DataSourceRef(type_val=CLICKHOUSE_PLUGIN, uid="${clickhouse}")
ALL = "$__all"
ALL_REGEX = ".*"
TAGS = ["llmlens"]
GRID_WIDTH = 24


# --- variables -----------------------------------------------------------------------------

def prometheus_variable() -> dashboards.DatasourceVariable:
    return (dashboards.DatasourceVariable("prometheus").label("Prometheus").type("prometheus")
            .current(model.VariableOption(selected=True, text=PROMETHEUS_NAME, value=PROMETHEUS_UID)))


def clickhouse_variable() -> dashboards.DatasourceVariable:
    return (dashboards.DatasourceVariable("clickhouse").label("ClickHouse").type(CLICKHOUSE_PLUGIN)
            .current(model.VariableOption(selected=True, text=CLICKHOUSE_NAME, value=CLICKHOUSE_UID)))


def job_variable(metric: str, default_job: str) -> dashboards.QueryVariable:
    """One job at a time: the server and an SDK app export the same llm_* families for the same
    calls, so summing over both jobs would count each call twice."""
    return (dashboards.QueryVariable("job").label("Job")
            .description("The scrape job to read: the llmlens server's, or one app's in-process metrics. "
                         "One at a time, so no call is counted twice.")
            .datasource(PROMETHEUS).query(f"label_values({metric}, job)")
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(model.VariableSort.ALPHABETICAL_ASC)
            .multi(False).include_all(False)
            .current(model.VariableOption(selected=True, text=default_job, value=default_job)))


def label_variable(name: str, label: str, metric_selector: str, label_name: str) -> dashboards.QueryVariable:
    """A multi-select over one label's values, "All" by default (sent as the regex `.*`)."""
    return (dashboards.QueryVariable(name).label(label).datasource(PROMETHEUS)
            .query(f"label_values({metric_selector}, {label_name})")
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(model.VariableSort.ALPHABETICAL_ASC)
            .multi(True).include_all(True).all_value(ALL_REGEX)
            .current(model.VariableOption(selected=True, text="All", value=ALL)))


# --- targets -------------------------------------------------------------------------------

def prom(expr: str, legend: str = "", *, instant: bool = False, table: bool = False, heatmap: bool = False,
         exemplar: bool = False) -> prometheus.Dataquery:
    """A Prometheus target. `instant` for totals over the dashboard's range ($__range)."""
    query = prometheus.Dataquery().datasource(PROMETHEUS).expr(expr)
    if legend:
        query.legend_format(legend)
    if instant:
        query.instant()
    else:
        query.range()
    if table:
        query.format(PromQueryFormat.TABLE)
    elif heatmap:
        query.format(PromQueryFormat.HEATMAP)
    if exemplar:
        query.exemplar(True)
    return query


class ClickHouseQuery(cogbuilder.Builder[cogvariants.Dataquery]):
    """A raw-SQL target of Grafana's ClickHouse plugin (4.x JSON: editorType, rawSql, format, queryType)."""

    # The plugin's format numbers for each query type (its src/data/utils.ts).
    FORMATS = {"timeseries": 0, "table": 1, "logs": 2, "traces": 3}

    def __init__(self, sql: str, query_type: str = "table") -> None:
        if query_type not in self.FORMATS:
            raise ValueError(f"unknown ClickHouse query type {query_type!r}")
        self._query: dict[str, Any] = {
            "refId": "A",
            "datasource": {"type": CLICKHOUSE_PLUGIN, "uid": "${clickhouse}"},
            "editorType": "sql",
            "rawSql": " ".join(sql.split()),
            "format": self.FORMATS[query_type],
            "queryType": query_type,
        }

    def ref_id(self, ref_id: str) -> ClickHouseQuery:
        self._query["refId"] = ref_id
        return self

    def build(self) -> cogvariants.Dataquery:
        return UnknownDataquery(dict(self._query))


# --- layout --------------------------------------------------------------------------------

class Layout:
    """Adds rows and panels to a dashboard: numbers panels from 1, names targets A, B, C, ...,
    and checks that each row of panels fills the 24 grid columns exactly (the SDK wraps to the
    next line only once a line is full, so widths must add up)."""

    def __init__(self, dashboard: dashboards.Dashboard) -> None:
        self.dashboard = dashboard
        self._next_id = 1
        self._line_width = 0

    def row(self, title: str) -> Layout:
        self._check_line_full(title)
        self.dashboard.with_row(dashboards.Row(title).id(self._take_id()))
        return self

    def panel(self, panel: Any, *targets: Any, width: int, height: int = 8) -> Layout:
        for index, target in enumerate(targets):
            target.ref_id(chr(ord("A") + index))
            panel.with_target(target)
        panel.id(self._take_id()).span(width).height(height)
        self.dashboard.with_panel(panel)
        self._line_width = (self._line_width + width) % GRID_WIDTH
        return self

    def to_json(self) -> dict[str, Any]:
        self._check_line_full("the end of the dashboard")
        return json.loads(json.dumps(self.dashboard.build(), cls=JSONEncoder))

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _check_line_full(self, where: str) -> None:
        if self._line_width:
            raise ValueError(f"panels before {where} leave a line {self._line_width}/{GRID_WIDTH} "
                             "columns wide")


def new_dashboard(uid: str, title: str, description: str) -> dashboards.Dashboard:
    return (dashboards.Dashboard(title).uid(uid).description(description).tags(TAGS).editable()
            .time("now-1h", "now").refresh("30s").timezone("browser")
            .tooltip(model.DashboardCursorSync.CROSSHAIR))


# --- field settings ------------------------------------------------------------------------

def link_to_trace(field: str) -> tuple[str, list[model.DynamicConfigValue]]:
    """An override making a trace-id column open the trace in llmlens (a new tab); the dashboard
    defines `$llmlens_url`."""
    link = {"title": "Open the trace in llmlens", "targetBlank": True,
            "url": "${llmlens_url}/traces/${__value.raw}"}
    return field, [model.DynamicConfigValue(id_val="links", value=[link])]


def unit_override(unit: str) -> list[model.DynamicConfigValue]:
    return [model.DynamicConfigValue(id_val="unit", value=unit)]


def right_axis(unit: str) -> list[model.DynamicConfigValue]:
    return [model.DynamicConfigValue(id_val="unit", value=unit),
            model.DynamicConfigValue(id_val="custom.axisPlacement", value="right")]


def transformation(kind: str, options: dict[str, Any] | None = None) -> model.DataTransformerConfig:
    return model.DataTransformerConfig(id_val=kind, options=options or {})
