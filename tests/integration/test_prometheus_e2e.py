"""A real Prometheus scraping a real llmlens server that receives the demo's telemetry.

One stack serves the module: `llmlens demo` (server with an API key, mock LLM, retriever, RAG
chatbot, traffic with injected failures) on free loopback ports, and Debian's Prometheus
scraping the server's /metrics every second with the bearer token (exemplar storage on), the
chatbot's own /metrics as a second job, and the server once more without the token. Assertions
go through Prometheus's HTTP API: the issue's queries, exemplars that lead to stored traces,
every query of the exported dashboards and every exported recording rule. The dashboards'
ClickHouse SQL runs last, on the server's store once the demo has stopped, through ClickHouse's
HTTP interface (tests/chdb_http_endpoint.py, the ClickHouse engine as chDB) as Grafana's
ClickHouse data source would send it.

Grafana itself cannot be installed here; tests/grafana_queries.py fills in its variables.
"""

from __future__ import annotations

import json
import math
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmlens.export.grafana import GrafanaSetup, grafana_files
from llmlens.export.prometheus_rules import recording_rules, rules_yaml
from tests.demo.conftest import new_marker_env, wait_until_no_marked_processes
from tests.grafana_queries import (
    clickhouse_sql,
    clickhouse_targets,
    fill_variables,
    prometheus_targets,
    promql,
)
from tests.integration.otlp_requests import llm_attrs, make_span, post, trace_request
from tests.server_process import check_installed_from_this_checkout, free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = "/usr/bin/prometheus"
API_KEY = "prometheus-e2e-key-5d1c0a97"
JOB = "llmlens"
STARTUP_TIMEOUT_S = 90.0
DATA_TIMEOUT_S = 60.0
UNPRICED_MODEL = "llmlens-e2e-unpriced-model"
SERVICES = {"demo-chatbot", "demo-retriever", "demo-mock-llm"}
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")

ISSUE_QUERIES = [
    "sum(rate(gen_ai_client_operation_duration_seconds_count[1m]))",
    "histogram_quantile(0.95, sum by (le) (rate(gen_ai_client_operation_duration_seconds_bucket[1m])))",
    "sum(gen_ai_client_token_usage_sum) / sum(gen_ai_client_token_usage_count)",
    "sum by (department) (increase(llm_cost_dollars_total[5m]))",
    'sum(rate(llm_requests_total{status="error"}[1m])) / sum(rate(llm_requests_total[1m]))',
    "histogram_quantile(0.95, sum by (le) (rate(llm_request_duration_seconds_bucket[1m])))",
    "sum by (service) (rate(traces_spanmetrics_calls_total[1m]))",
]


@dataclass
class Stack:
    tmp: Path
    demo: subprocess.Popen
    marker: str
    state: dict[str, Any]
    prometheus: subprocess.Popen
    prometheus_url: str
    boards: dict[str, dict[str, Any]]
    rules_file: Path
    started: float = field(default_factory=time.time)
    output: list[str] = field(default_factory=list)

    @property
    def server(self) -> str:
        return self.state["server"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result; fails on any error Prometheus reports."""
        response = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr}, timeout=30)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", f"{expr}\n{body}"
        return body["data"]["result"]

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.server}{path}", params=params, timeout=30,
                             headers={"Authorization": f"Bearer {API_KEY}"})
        response.raise_for_status()
        return response.json()

    def stop_demo(self) -> int | None:
        """SIGINT, as a Ctrl-C: the demo stops its services, then the server (closing the store)."""
        if self.demo.poll() is None:
            self.demo.send_signal(signal.SIGINT)
            try:
                self.demo.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.demo.kill()
                self.demo.wait(30)
        return self.demo.returncode


def _has_data(result: list[dict[str, Any]]) -> bool:
    """At least one sample that is a number (a quantile over an empty window is NaN)."""
    values = [s["value"][1] for s in result if "value" in s]
    return any(not math.isnan(float(v)) for v in values)


def _poll(description: str, find: Callable[[], Any], timeout_s: float = DATA_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = find()
        if found:
            return found
        assert time.monotonic() < deadline, f"gave up after {timeout_s:.0f} s waiting for {description}"
        time.sleep(1.0)


def _prometheus_config(state: dict[str, Any], rules: Path) -> dict[str, Any]:
    server = state["server"].split("//", 1)[1]
    chatbot = state["chatbot"].split("//", 1)[1]
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            # The documented scrape config (docs/grafana.md): /metrics is behind the API key.
            {"job_name": JOB, "authorization": {"type": "Bearer", "credentials": API_KEY},
             "static_configs": [{"targets": [server]}]},
            {"job_name": "chatbot", "static_configs": [{"targets": [chatbot]}]},
            {"job_name": "llmlens-without-token", "static_configs": [{"targets": [server]}]},
        ],
    }


def _start_demo(tmp: Path) -> tuple[subprocess.Popen, str, dict[str, Any], list[str]]:
    data_dir = tmp / "demo"
    data_dir.mkdir()
    marker, env = new_marker_env()
    env["LLMLENS_API_KEY"] = API_KEY  # the server requires it; every demo service's SDK sends it
    argv = [
        sys.executable, "-m", "llmlens.demo", "--ports", "auto", "--data-dir", str(data_dir),
        "--duration", "600", "--rate", "4", "--concurrency", "4", "--error-rate", "0.15", "--seed", "11",
        "--scenarios", "simple:3,long,multi_turn,burst:0.5,error_storm:0.5",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    state_file = data_dir / "demo.json"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not state_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"demo not up (exit {proc.poll()}):\n{''.join(output)}")
        time.sleep(0.2)
    return proc, marker, json.loads(state_file.read_text()), output


def _start_prometheus(tmp: Path, config: dict[str, Any]) -> tuple[subprocess.Popen, str]:
    assert Path(PROMETHEUS).exists(), "Debian's prometheus package is missing (make test installs it)"
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115 -- kept open for the process's life
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--enable-feature=exemplar-storage", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"prometheus not ready:\n{(tmp / 'prometheus.log').read_text()}")
        time.sleep(0.2)


def _send_unpriced_calls(server: str) -> None:
    """Calls to a model without a price, from a service of their own (the demo's phi3 is unpriced too)."""
    spans = [make_span("chat " + UNPRICED_MODEL, duration_ms=120, kind=3,
                       attrs=llm_attrs(UNPRICED_MODEL, 40, 12)) for _ in range(3)]
    response = post(server, "traces", trace_request(spans, service="e2e-unpriced-app"),
                    headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    check_installed_from_this_checkout()
    tmp = tmp_path_factory.mktemp("prometheus-e2e")
    rules_file = tmp / "llmlens.rules.yml"
    rules_file.write_text(rules_yaml())
    files = grafana_files(GrafanaSetup(job=JOB))
    boards = {board["uid"]: board for board in (json.loads(text) for name, text in files.items()
                                                if name.endswith(".json"))}
    demo, marker, state, output = _start_demo(tmp)
    prometheus = None
    try:
        prometheus, url = _start_prometheus(tmp, _prometheus_config(state, rules_file))
        _send_unpriced_calls(state["server"])
        yield Stack(tmp, demo, marker, state, prometheus, url, boards, rules_file, output=output)
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(30)
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(60)
            except subprocess.TimeoutExpired:
                demo.kill()
        wait_until_no_marked_processes(marker)


def test_prometheus_scrapes_the_server_with_the_token_and_the_chatbot(stack: Stack) -> None:
    def targets() -> dict[str, dict[str, Any]] | None:
        active = httpx.get(f"{stack.prometheus_url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        by_job = {t["labels"]["job"]: t for t in active}
        return by_job if all(t["health"] != "unknown" for t in by_job.values()) and len(by_job) == 3 else None

    by_job = _poll("three scraped targets", targets, 30)
    assert by_job[JOB]["health"] == "up", by_job[JOB]["lastError"]
    assert by_job["chatbot"]["health"] == "up", by_job["chatbot"]["lastError"]
    # Without the token the server answers 401: /metrics is behind the API key like the rest.
    assert by_job["llmlens-without-token"]["health"] == "down"
    assert "401" in by_job["llmlens-without-token"]["lastError"]


@pytest.mark.parametrize("expr", ISSUE_QUERIES)
def test_the_issues_queries_return_data(stack: Stack, expr: str) -> None:
    _poll(expr, lambda: _has_data(stack.query(expr)))


def test_cost_is_counted_by_department_and_unpriced_calls_apart(stack: Stack) -> None:
    by_department = _poll("cost by department", lambda: stack.query(
        f'sum by (department) (increase(llm_cost_dollars_total{{job="{JOB}"}}[5m])) > 0'))
    # The demo's departments whose models have a price; IT's helpdesk runs a local, unpriced model.
    assert {s["metric"].get("department") for s in by_department} == {"customer-support", "sales"}

    def both_unpriced() -> list[dict[str, Any]] | None:
        found = stack.query(f'llm_unpriced_requests_total{{job="{JOB}"}}')
        return found if {s["metric"]["model"] for s in found} >= {UNPRICED_MODEL, "phi3"} else None

    unpriced = _poll("unpriced calls", both_unpriced)
    assert {s["metric"]["model"] for s in unpriced} == {UNPRICED_MODEL, "phi3"}  # ours and the demo's local model
    assert sum(float(s["value"][1]) for s in unpriced if s["metric"]["model"] == UNPRICED_MODEL) == 3


def test_red_metrics_cover_every_demo_service(stack: Stack) -> None:
    def services() -> set[str] | None:
        found = {s["metric"]["service"] for s in stack.query("sum by (service) (traces_spanmetrics_calls_total)")}
        return found if found >= SERVICES else None

    _poll("span metrics of every demo service", services)


def test_the_service_graph_has_chatbot_to_retriever_and_to_the_llm(stack: Stack) -> None:
    def edges() -> set[tuple[str, str]] | None:
        found = {(s["metric"]["client"], s["metric"]["server"])
                 for s in stack.query(f'traces_service_graph_request_total{{job="{JOB}"}}')}
        wanted = {("demo-chatbot", "demo-retriever"), ("demo-chatbot", "demo-mock-llm")}
        return found if found >= wanted else None

    _poll("service graph edges chatbot -> retriever and chatbot -> mock LLM", edges)


def test_exemplars_carry_trace_ids_of_stored_traces(stack: Stack) -> None:
    def exemplars() -> list[dict[str, Any]]:
        response = httpx.get(f"{stack.prometheus_url}/api/v1/query_exemplars", timeout=30, params={
            "query": f'gen_ai_client_operation_duration_seconds_bucket{{job="{JOB}"}}',
            "start": stack.started - 60, "end": time.time() + 60})
        body = response.json()
        assert body["status"] == "success", body
        return [e for series in body["data"] for e in series["exemplars"]]

    found = _poll("exemplars on gen_ai_client_operation_duration_seconds", exemplars)
    trace_ids = {e["labels"].get("trace_id", "") for e in found}
    assert all(TRACE_ID.match(t) for t in trace_ids), trace_ids
    # The link Grafana builds (llmlens's trace page) leads to a stored trace.
    trace = stack.api(f"/api/v1/traces/{sorted(trace_ids)[0]}")
    assert trace["spans"]


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    pending = {t.where: (t, board) for board in stack.boards.values() for t in prometheus_targets(board)}
    assert len(pending) > 40

    def still_empty() -> dict[str, str]:
        for where, (target, board) in list(pending.items()):
            if _has_data(stack.query(promql(target.query["expr"], board))):
                del pending[where]
        return pending

    deadline = time.monotonic() + DATA_TIMEOUT_S
    while still_empty() and time.monotonic() < deadline:
        time.sleep(1.0)
    assert not pending, "no data for:\n" + "\n".join(
        f"{where}: {promql(t.query['expr'], b)}" for where, (t, b) in pending.items())


def test_dashboard_variables_list_the_servers_job_and_values(stack: Stack) -> None:
    for board in stack.boards.values():
        for var in board["templating"]["list"]:
            if var["type"] != "query" or var["datasource"]["type"] != "prometheus":
                continue
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", var["query"])
            assert match, var["query"]
            selector, label = fill_variables(match.group(1), board), match.group(2)
            values = httpx.get(f"{stack.prometheus_url}/api/v1/label/{label}/values",
                               params={"match[]": selector, "start": stack.started - 60}, timeout=30).json()["data"]
            assert values, (board["uid"], var["name"])
            if var["name"] == "job":
                assert JOB in values and "chatbot" not in values


def test_recording_rules_evaluate_and_record_data(stack: Stack) -> None:
    groups = httpx.get(f"{stack.prometheus_url}/api/v1/rules", timeout=30).json()["data"]["groups"]
    loaded = [rule for group in groups for rule in group["rules"]]
    assert len(loaded) == len(recording_rules())
    for rule in recording_rules():
        _poll(f"a value of {rule['expr']}", lambda r=rule: _has_data(stack.query(r["expr"])))
        selector = rule["record"] + "{" + ",".join(f'{k}="{v}"' for k, v in rule.get("labels", {}).items()) + "}"
        _poll(f"the recorded series {selector}", lambda s=selector: _has_data(stack.query(s)))
    groups = httpx.get(f"{stack.prometheus_url}/api/v1/rules", timeout=30).json()["data"]["groups"]
    unhealthy = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] != "ok"]
    assert not unhealthy


def test_promtool_accepts_the_exported_rules(stack: Stack) -> None:
    result = subprocess.run(["promtool", "check", "rules", str(stack.rules_file)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(recording_rules())} rules found" in result.stdout


def test_promtool_accepts_the_servers_metrics(stack: Stack) -> None:
    response = httpx.get(f"{stack.server}/metrics", timeout=30, headers={
        "Authorization": f"Bearer {API_KEY}", "Accept": "text/plain; version=0.0.4"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    result = subprocess.run(["promtool", "check", "metrics"], input=response.text,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --- last: the ClickHouse dashboard, on the store once the demo has stopped ------------------------

class ClickHouseHttp:
    """tests/chdb_http_endpoint.py over the demo server's store (chDB: one process per data folder)."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self._log = open(log, "wb")  # noqa: SIM115 -- closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.chdb_http_endpoint", "--port", "0",
                                      "--data-dir", str(data_dir)],
                                     cwd=REPO, stdout=subprocess.PIPE, stderr=self._log)
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"ClickHouse endpoint did not start: {line!r}\n{log.read_text(errors='replace')}")
        self.url = f"http://{line.split()[-1]}"

    def rows(self, sql: str) -> list[dict[str, Any]]:
        response = httpx.post(self.url, params={"database": "default", "default_format": "JSON"},
                              content=sql, timeout=60)
        assert response.status_code == 200, f"{sql}\n{response.text}"
        return response.json()["data"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self._log.close()


def test_every_clickhouse_query_of_the_dashboards_returns_rows(stack: Stack) -> None:
    # Every panel has something to show once failed calls are stored (injected at random).
    _poll("a failed trace in the store", lambda: stack.api("/api/v1/traces", status="error", limit=1)["items"])
    assert stack.stop_demo() == 0, "".join(stack.output)
    assert not wait_until_no_marked_processes(stack.marker)
    clickhouse = ClickHouseHttp(stack.tmp / "demo" / "store", stack.tmp / "clickhouse-endpoint.log")
    try:
        board = stack.boards["llmlens-traces-logs"]
        window = {"start_s": int(stack.started) - 60, "end_s": int(time.time()) + 60, "interval_s": 10}
        services = clickhouse.rows(clickhouse_sql(
            next(v for v in board["templating"]["list"] if v["name"] == "service")["query"], board, **window))
        assert {row["ServiceName"] for row in services} >= SERVICES
        logged = clickhouse.rows("SELECT TraceId FROM otel_logs WHERE TraceId != '' LIMIT 1")[0]["TraceId"]
        for choice in ({}, {"service": ["demo-traffic", "demo-chatbot"]}, {"trace_id": logged}):
            for target in clickhouse_targets(board):
                sql = clickhouse_sql(target.query["rawSql"], board, overrides=choice, **window)
                assert clickhouse.rows(sql), f"no rows for {target.where} with {choice}:\n{sql}"
        chosen = clickhouse_sql(next(t for t in clickhouse_targets(board) if t.panel == "Logs").query["rawSql"],
                                board, overrides={"trace_id": logged}, **window)
        assert {row["trace_id"] for row in clickhouse.rows(chosen)} == {logged}
    finally:
        clickhouse.stop()
