"""The exported alerting rules on a real Prometheus: Debian's Prometheus loads what `llmlens export
prometheus-rules --rules-file` writes, scrapes a real llmlens server's /metrics while an error burst
arrives over OTLP, and fires HighErrorRate into a real Alertmanager. The same server evaluates the
same rule itself and sends to a second Alertmanager: both read back from /api/v2/alerts, with the
same labels. (Two Alertmanagers, so that each engine's alert is read as that engine sent it: into
one, alerts with equal labels are one alert.)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.otlp_requests import llm_attrs, make_span, post, trace_request
from tests.monitoring_processes import alertmanager, alerts, prometheus
from tests.server_process import ServerProcess

pytestmark = pytest.mark.slow

MODEL = "gpt-4o-mini"
# The default HighErrorRate with a short window and `for`, so the test takes seconds, not minutes.
RULES = """\
rules:
  - name: HighErrorRate
    signal: error_rate
    window: 20s
    group_by: [model]
    op: ">"
    threshold: 0.05
    for: 2s
    min_samples: 10
    labels: {severity: critical}
    annotations: {summary: "LLM error rate of {{model}} is {{value | percent}}"}
"""


def export_rules(rules: Path, out: Path) -> list[dict[str, Any]]:
    """The rule file, as a user writes it: the installed command (the file's HighErrorRate replaces
    the default one; the other default rules come along, to be evaluated on real series too)."""
    result = subprocess.run([sys.executable, "-m", "llmlens.cli", "export", "prometheus-rules", "--rules-file",
                             str(rules), "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [r for g in yaml.safe_load(out.read_text())["groups"] for r in g["rules"] if "alert" in r]


def send_calls(server: ServerProcess, errors: int, ok: int) -> None:
    spans = [make_span("chat " + MODEL, attrs=llm_attrs(MODEL, 10, 5), error=i < errors) for i in range(errors + ok)]
    answer = post(server.url, "traces", trace_request(spans, service="prometheus-alerts-e2e"))
    assert answer.status_code == 200, answer.text


def prometheus_config(server: ServerProcess, rules_file: Path, alertmanager_url: str) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules_file)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager_url.split("//", 1)[1]]}]}]},
        "scrape_configs": [{"job_name": "llmlens", "static_configs": [{"targets": [server.url.split("//", 1)[1]]}]}],
    }


def query(prometheus_url: str, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_prometheus_fires_the_exported_rule_with_the_labels_llmlens_sends(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    exported = {r["alert"]: r for r in export_rules(rules, tmp_path / "llmlens.rules.yml")}
    assert set(exported) == {"HighErrorRate", "HighLatencyP95", "SlowTimeToFirstToken", "UnpricedModelCalls"}
    assert exported["HighErrorRate"]["for"] == "2s"

    with alertmanager(tmp_path / "am-prometheus") as am_prometheus, \
            alertmanager(tmp_path / "am-llmlens") as am_llmlens:
        server = ServerProcess(tmp_path / "data", extra_args=[
            "--rules-file", str(rules), "--rules-interval", "1s", "--no-alerts-default-rules",
            "--alertmanager-url", am_llmlens, "--external-url", "https://llmlens.example.com"]).start()
        try:
            config = prometheus_config(server, tmp_path / "llmlens.rules.yml", am_prometheus)
            with prometheus(tmp_path / "prometheus", config) as prom:
                # Healthy traffic first: scraped, and no alert from either engine.
                for _ in range(6):
                    send_calls(server, errors=0, ok=5)
                    time.sleep(0.5)
                _wait("the healthy calls scraped", lambda: query(prom, 'llm_requests_total{job="llmlens"}'))
                time.sleep(2)
                assert alerts(am_prometheus, "HighErrorRate") == [] and alerts(am_llmlens, "HighErrorRate") == []

                # The burst: 3 of every 5 calls fail, until both Alertmanagers hold the alert.
                first_error = time.time()
                reached: dict[str, float] = {}
                deadline = time.monotonic() + 60
                while len(reached) < 2:
                    send_calls(server, errors=3, ok=2)
                    for name, url in (("prometheus", am_prometheus), ("llmlens", am_llmlens)):
                        if name not in reached and alerts(url, "HighErrorRate"):
                            reached[name] = time.time() - first_error
                    assert time.monotonic() < deadline, f"only {sorted(reached)} reached Alertmanager in 60 s"
                    time.sleep(0.5)

                [from_prometheus] = alerts(am_prometheus, "HighErrorRate")
                [from_llmlens] = alerts(am_llmlens, "HighErrorRate")
                expected = {"alertname": "HighErrorRate", "severity": "critical", "model": MODEL}
                assert from_prometheus["labels"] == from_llmlens["labels"] == expected
                # Each is the engine's own: Prometheus links to its graph, llmlens to its alert page.
                assert "/graph?g0.expr=" in from_prometheus["generatorURL"]
                assert from_llmlens["generatorURL"].startswith("https://llmlens.example.com/alerts?rule=HighErrorRate")
                for alert in (from_prometheus, from_llmlens):
                    assert alert["status"]["state"] == "active"
                    summary = alert["annotations"]["summary"]
                    assert summary.startswith(f"LLM error rate of {MODEL} is ") and summary.endswith("%"), summary

                groups = httpx.get(f"{prom}/api/v1/rules", timeout=10).json()["data"]["groups"]
                loaded = {r["name"]: r for g in groups for r in g["rules"] if r["type"] == "alerting"}
                assert set(loaded) == set(exported)
                assert loaded["HighErrorRate"]["state"] == "firing"
                for name, rule in loaded.items():  # every exported expression runs on the real series
                    assert rule["health"] == "ok" and not rule.get("lastError"), (name, rule)
                    if name != "HighErrorRate":
                        assert rule["state"] == "inactive", (name, rule)  # fast, priced calls
                print(f"\nfirst error span -> Alertmanager: through Prometheus {reached['prometheus']:.1f} s "
                      f"(scrape and evaluation every 1 s, for 2s), through llmlens {reached['llmlens']:.1f} s "
                      f"(rules interval 1 s, for 2s)")
        finally:
            server.terminate()


def _wait(description: str, find, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = find()
        if found:
            return found
        assert time.monotonic() < deadline, f"gave up waiting for {description}"
        time.sleep(0.5)
