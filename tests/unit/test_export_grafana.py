"""`llmlens export grafana`: the dashboards' JSON shape and the provisioning files.

Grafana cannot run here, so the dashboards are held to what Grafana needs from them: stable uids,
data sources that exist in the provisioning, targets Grafana can route, a grid that does not
overlap, every query filtered by job, every PromQL expression accepted by Prometheus's own parser
(promtool), and a round trip through grafana-foundation-sdk's types. The queries return data on
a real Prometheus in tests/integration/test_prometheus_e2e.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from llmlens.export.grafana import GrafanaSetup, grafana_files, write_grafana_export
from llmlens.export.grafana_setup import ExportError, check_setup, parse_clickhouse_url
from tests.grafana_queries import clickhouse_targets, fill_variables, prometheus_targets, promql, targets

UIDS = {"llmlens-llm-overview", "llmlens-red-service-graph", "llmlens-traces-logs"}
SETUP = GrafanaSetup(prometheus_url="http://prometheus:9090",
                     clickhouse_url="https://reader@ch.example:8443/llm",
                     llmlens_url="https://llmlens.example/", job="llmlens-server")
OVERVIEW_PANELS = {  # the llmlens UI's overview, panel for panel
    "Request rate", "Total cost", "Unpriced calls", "Successful", "Failed", "Error rate", "Models in use",
    "Latency p95", "Time to first token p50", "Output tokens/s", "Tokens in / out", "Latency p50 / p95 / p99",
    "Time to first token", "Request volume: successes and failures", "Output tokens per second",
    "Tokens versus cost", "Request duration distribution", "Models in use (share of requests)",
    "Top error types", "Cost by department and app",
}


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    return grafana_files(SETUP)


@pytest.fixture(scope="module")
def boards(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {name: json.loads(text) for name, text in files.items() if name.startswith("dashboards/")}


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def _grafana_expand(value: str, env: dict[str, str]) -> str:
    """Grafana's provisioning interpolation: split at `$$`, expand $VAR/${VAR} in each part as Go's
    os.ExpandEnv does (unset is empty), join with a literal `$`."""
    pattern = re.compile(r"\$\{([^}]*)\}|\$([A-Za-z0-9_]+)")
    parts = value.split("$$")
    return "$".join(pattern.sub(lambda m: env.get(m.group(1) or m.group(2), ""), part) for part in parts)


def test_the_export_holds_three_dashboards_and_two_provisioning_files(files, boards) -> None:
    assert set(files) == {"provisioning/datasources/llmlens.yaml", "provisioning/dashboards/llmlens.yaml",
                          *(f"dashboards/{uid}.json" for uid in UIDS)}
    assert {b["uid"] for b in boards.values()} == UIDS
    for board in boards.values():
        assert board["schemaVersion"] == 42
        assert "llmlens" in board["tags"]


def test_the_export_is_the_same_every_time(files) -> None:
    """Stable uids and panel ids: re-provisioning replaces the dashboards instead of adding copies."""
    assert grafana_files(SETUP) == files


def test_dashboards_round_trip_through_the_sdk_types(boards) -> None:
    from grafana_foundation_sdk.models.dashboard import Dashboard  # imported (warning silenced) by the export

    for name, board in boards.items():
        again = json.loads(json.dumps(Dashboard.from_json(board), cls=JSONEncoder))
        assert again == board, name


def test_panels_have_unique_ids_and_do_not_overlap(boards) -> None:
    for name, board in boards.items():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            g = panel["gridPos"]
            assert g["x"] + g["w"] <= 24, (name, panel["title"], g)
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not mine & cells, (name, panel["title"], g)
            cells |= mine


def test_every_target_names_its_data_source_and_a_unique_ref_id(boards) -> None:
    for board in boards.values():
        for panel in _panels(board):
            refs = [t["refId"] for t in panel["targets"]]
            assert refs and len(refs) == len(set(refs)), panel["title"]
            kind = panel["datasource"]["type"]
            assert kind in ("prometheus", "grafana-clickhouse-datasource"), panel["title"]
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"], panel["title"]


def test_data_source_variables_default_to_the_provisioned_data_sources(files, boards) -> None:
    provisioning = yaml.safe_load(files["provisioning/datasources/llmlens.yaml"])
    provisioned = {d["uid"]: d for d in provisioning["datasources"]}
    for board in boards.values():
        for var in board["templating"]["list"]:
            if var["type"] == "datasource":
                assert var["current"]["value"] in provisioned
                assert provisioned[var["current"]["value"]]["type"] == var["query"]
        used = {p["datasource"]["uid"] for p in _panels(board)}
        defined = {"${" + v["name"] + "}" for v in board["templating"]["list"] if v["type"] == "datasource"}
        assert used <= defined, board["uid"]


def test_the_overview_has_the_ui_overview_panels(boards) -> None:
    titles = {p["title"] for p in _panels(boards["dashboards/llmlens-llm-overview.json"])}
    assert titles >= OVERVIEW_PANELS, OVERVIEW_PANELS - titles


def test_latency_panels_ask_for_exemplars(boards) -> None:
    overview = {p["title"]: p for p in _panels(boards["dashboards/llmlens-llm-overview.json"])}
    red = {p["title"]: p for p in _panels(boards["dashboards/llmlens-red-service-graph.json"])}
    for panel in (overview["Latency p50 / p95 / p99"], overview["Operation duration p95 by model"],
                  red["Duration p95"]):
        assert any(t.get("exemplar") for t in panel["targets"]), panel["title"]


def test_every_prometheus_selector_is_filtered_by_the_job_variable(boards) -> None:
    """An app scraped beside the server exports the same llm_* series: without the job filter a
    dashboard would count each call twice."""
    for board in boards.values():
        job = next(v for v in board["templating"]["list"] if v["name"] == "job") if any(
            v["name"] == "job" for v in board["templating"]["list"]) else None
        if prometheus_targets(board):
            assert job and job["multi"] is False and job["includeAll"] is False
            assert job["current"]["value"] == "llmlens-server"
        for target in prometheus_targets(board):
            selectors = re.findall(r"\b([a-z_:]+)\{([^}]*)\}", target.query["expr"])
            assert selectors, target.where
            for metric, labels in selectors:
                assert 'job=~"$job"' in labels, (target.where, metric)


def test_the_service_graph_panel_gets_edges_grafana_can_draw(boards) -> None:
    """Grafana's node graph takes an edges-only frame with id, source and target fields."""
    red = boards["dashboards/llmlens-red-service-graph.json"]
    graph = next(p for p in _panels(red) if p["type"] == "nodeGraph")
    assert all(t["format"] == "table" and t["instant"] for t in graph["targets"])
    assert all('label_join(' in t["expr"] and '"id"' in t["expr"] for t in graph["targets"])
    assert all("traces_service_graph_request" in t["expr"] for t in graph["targets"])
    renames = next(t for t in graph["transformations"] if t["id"] == "organize")["options"]["renameByName"]
    assert renames["client"] == "source" and renames["server"] == "target"
    assert {"mainStat", "secondaryStat"} <= set(renames.values())


def test_every_prometheus_expression_parses_in_promtool(boards, tmp_path: Path) -> None:
    """Each query, with Grafana's variables filled in, as a recording rule for promtool's parser."""
    assert shutil.which("promtool"), "promtool missing: install Debian's prometheus package (make test does)"
    exprs = [promql(t.query["expr"], b) for b in boards.values() for t in prometheus_targets(b)]
    exprs += [fill_variables(v["query"].removeprefix("label_values(").rsplit(",", 1)[0], b)
              for b in boards.values() for v in b["templating"]["list"]
              if v["type"] == "query" and v["datasource"]["type"] == "prometheus"]
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:query_{i}:check", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run(["promtool", "check", "rules", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_clickhouse_targets_are_raw_sql_in_the_plugins_shape(boards) -> None:
    board = boards["dashboards/llmlens-traces-logs.json"]
    found = clickhouse_targets(board)
    assert {t.panel for t in found} >= {"Traces", "LLM calls", "Logs"}
    formats = {"timeseries": 0, "table": 1, "logs": 2, "traces": 3}
    for target in found:
        q = target.query
        assert q["editorType"] == "sql" and q["format"] == formats[q["queryType"]], target.where
        assert "$__timeFilter(" in q["rawSql"], target.where
        assert re.search(r"\bFROM (otel_traces|otel_logs|llm_calls|trace_index)\b", q["rawSql"]), target.where
    logs = next(t for t in found if t.panel == "Logs")
    assert logs.query["queryType"] == "logs"
    assert all(not t.query.get("expr") for t in targets(board))


def test_trace_ids_link_to_the_llmlens_trace_page(boards) -> None:
    board = boards["dashboards/llmlens-traces-logs.json"]
    constant = next(v for v in board["templating"]["list"] if v["name"] == "llmlens_url")
    assert constant["type"] == "constant" and constant["query"] == "https://llmlens.example/"
    for title in ("Traces", "LLM calls"):
        panel = next(p for p in _panels(board) if p["title"] == title)
        override = next(o for o in panel["fieldConfig"]["overrides"] if o["matcher"]["options"] == "trace_id")
        (link,) = override["properties"][0]["value"]
        assert link["url"] == "${llmlens_url}/traces/${__value.raw}"


def test_datasources_provisioning_after_grafanas_interpolation(files) -> None:
    provisioning = yaml.safe_load(files["provisioning/datasources/llmlens.yaml"])
    assert provisioning["apiVersion"] == 1
    prometheus, clickhouse = provisioning["datasources"]
    assert prometheus["type"] == "prometheus" and prometheus["url"] == "http://prometheus:9090"
    (destination,) = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    assert destination["name"] == "trace_id" and "datasourceUid" not in destination
    env = {"LLMLENS_CLICKHOUSE_PASSWORD": "s3cret", "__value": "leak"}
    assert _grafana_expand(destination["url"], env) == "https://llmlens.example/traces/${__value.raw}"
    assert clickhouse["type"] == "grafana-clickhouse-datasource"
    assert clickhouse["jsonData"] | {"logs": None, "traces": None} == {
        "protocol": "http", "host": "ch.example", "port": 8443, "secure": True, "username": "reader",
        "defaultDatabase": "llm", "logs": None, "traces": None}
    assert clickhouse["jsonData"]["traces"]["defaultTable"] == "otel_traces"
    assert clickhouse["jsonData"]["logs"]["defaultTable"] == "otel_logs"
    assert _grafana_expand(clickhouse["secureJsonData"]["password"], env) == "s3cret"


def test_a_dollar_in_a_setting_reaches_grafana_unexpanded(tmp_path: Path) -> None:
    setup = GrafanaSetup(llmlens_url="http://host/$HOME", prometheus_url="http://prom/$x")
    provisioning = yaml.safe_load(grafana_files(setup)["provisioning/datasources/llmlens.yaml"])
    prometheus = provisioning["datasources"][0]
    assert _grafana_expand(prometheus["url"], {"x": "no"}) == "http://prom/$x"
    url = prometheus["jsonData"]["exemplarTraceIdDestinations"][0]["url"]
    assert _grafana_expand(url, {"HOME": "/root"}) == "http://host/$HOME/traces/${__value.raw}"


def test_dashboards_provisioning_points_at_the_dashboards_path(files) -> None:
    (provider,) = yaml.safe_load(files["provisioning/dashboards/llmlens.yaml"])["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards/llmlens"
    assert provider["folderUid"] == "llmlens"


def test_clickhouse_urls() -> None:
    plain = parse_clickhouse_url("http://localhost:8123")
    assert (plain.host, plain.port, plain.secure, plain.username, plain.database) == (
        "localhost", 8123, False, "default", "default")
    tls = parse_clickhouse_url("https://ch:9999/otel")
    assert (tls.port, tls.secure, tls.database) == (9999, True, "otel")
    with pytest.raises(ExportError, match="must not hold a password"):
        parse_clickhouse_url("http://user:pw@ch:8123/db")
    with pytest.raises(ExportError, match="one database name"):
        parse_clickhouse_url("http://ch:8123/a/b")
    with pytest.raises(ExportError, match="--clickhouse-url must look like"):
        parse_clickhouse_url("tcp://ch:9000")
    with pytest.raises(ExportError, match="--clickhouse-url"):
        parse_clickhouse_url("http://ch:port/db")


@pytest.mark.parametrize(("change", "flag"), [
    ({"prometheus_url": "localhost:9090"}, "--prometheus-url"),
    ({"llmlens_url": "ftp://x"}, "--llmlens-url"),
    ({"job": 'a"b'}, "--job"),
    ({"job": ""}, "--job"),
    ({"dashboards_path": "relative/dir"}, "--dashboards-path"),
])
def test_bad_settings_name_their_flag(change: dict[str, str], flag: str) -> None:
    with pytest.raises(ExportError, match=re.escape(flag)):
        check_setup(GrafanaSetup(**change))


def test_write_creates_the_folder_and_replaces_earlier_files(tmp_path: Path) -> None:
    out = tmp_path / "new" / "grafana"
    first = write_grafana_export(out, GrafanaSetup())
    (out / "dashboards" / "llmlens-llm-overview.json").write_text("stale")
    second = write_grafana_export(out, GrafanaSetup())
    assert first == second and all(p.is_file() for p in second)
    overview = json.loads((out / "dashboards" / "llmlens-llm-overview.json").read_text())
    assert overview["uid"] == "llmlens-llm-overview"
    assert sorted(os.listdir(out)) == ["dashboards", "provisioning"]
