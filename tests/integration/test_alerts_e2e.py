"""Alerts end to end: a real server with a rules file, a local webhook receiver and (Debian's
package) a real Alertmanager. An error burst sent over OTLP makes HighErrorRate fire and reach
both; a restart while it fires neither loses nor repeats the message; when errors stop it
resolves, once. The API answers in Prometheus's shapes meanwhile."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.integration.otlp_requests import llm_attrs, make_span, post, trace_request
from tests.monitoring_processes import alertmanager as run_alertmanager
from tests.monitoring_processes import alerts
from tests.server_process import ServerProcess
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.slow

SECRET = "e2e-webhook-secret"
WINDOW_S = 30  # long enough to hold the errors across a restart
RULES = f"""\
rules:
  - name: HighErrorRate
    signal: error_rate
    window: {WINDOW_S}s
    group_by: [model]
    op: ">"
    threshold: 0.05
    for: 2s
    labels: {{severity: critical}}
    annotations: {{summary: "LLM error rate of {{{{model}}}} is {{{{value | percent}}}}"}}
"""


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory) -> Iterator[str]:
    """A real Alertmanager on a free loopback port (clustering off), its config checked by amtool."""
    with run_alertmanager(tmp_path_factory.mktemp("alertmanager")) as url:
        yield url


def send_calls(server: ServerProcess, model: str, errors: int, ok: int) -> None:
    spans = [make_span("chat " + model, attrs=llm_attrs(model, 10, 5), error=i < errors) for i in range(errors + ok)]
    answer = post(server.url, "traces", trace_request(spans, service="alert-e2e"))
    assert answer.status_code == 200, answer.text


def am_alerts(url: str) -> list[dict]:
    return alerts(url, "HighErrorRate")


def test_error_burst_fires_reaches_webhook_and_alertmanager_survives_a_restart_and_resolves(
        tmp_path: Path, alertmanager: str) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    with WebhookReceiver() as receiver:
        server = ServerProcess(tmp_path / "data", extra_args=[
            "--rules-file", str(rules), "--rules-interval", "1s", "--no-alerts-default-rules",
            "--alertmanager-url", alertmanager, "--alerts-webhooks", f"ops={receiver.url}/hook",
            "--external-url", "https://llmlens.example.com"],
            env={"LLMLENS_ALERTS_WEBHOOK_SECRET": SECRET})
        server.start()
        try:
            send_calls(server, "gpt-4o-mini", errors=0, ok=10)  # healthy traffic first: no alert
            time.sleep(3)
            assert receiver.messages() == []
            first_error = time.time()
            send_calls(server, "gpt-4o-mini", errors=6, ok=4)
            [fired] = receiver.wait_for(lambda m: len(m) == 1, timeout=30)
            firing_latency = fired["at"] - first_error
            body = fired["json"]
            assert body["status"] == "firing" and body["receiver"] == "ops"
            assert body["alert"]["labels"] == {"alertname": "HighErrorRate", "severity": "critical",
                                               "model": "gpt-4o-mini"}
            assert body["alert"]["annotations"]["summary"].startswith("LLM error rate of gpt-4o-mini is ")
            assert body["alert"]["generatorURL"].startswith("https://llmlens.example.com/alerts?rule=HighErrorRate")
            expected = "sha256=" + hmac.new(SECRET.encode(), fired["body"], hashlib.sha256).hexdigest()
            assert fired["headers"]["X-Llmlens-Signature-256"] == expected

            in_am = _wait(lambda: am_alerts(alertmanager), timeout=15)
            assert in_am[0]["labels"]["model"] == "gpt-4o-mini" and in_am[0]["status"]["state"] == "active"
            assert in_am[0]["generatorURL"].startswith("https://llmlens.example.com/alerts?rule=HighErrorRate")
            am_latency = time.time() - first_error
            ends_in = datetime.fromisoformat(in_am[0]["endsAt"].replace("Z", "+00:00")).timestamp() - time.time()
            assert 200 < ends_in <= 240  # now + 4 x max(interval, 1 min), as Prometheus sends

            active = server.get("/api/v1/alerts").json()
            assert active["status"] == "success"
            [alert] = active["data"]["alerts"]
            assert alert["state"] == "firing" and alert["labels"]["alertname"] == "HighErrorRate"
            assert 0.05 < float(alert["value"]) <= 0.6 and alert["activeAt"].endswith("Z")  # 6 of 10 or of 20
            [group] = server.get("/api/v1/rules").json()["data"]["groups"]
            [rule] = group["rules"]
            assert (rule["name"], rule["state"], rule["health"], rule["type"], rule["duration"]) == (
                "HighErrorRate", "firing", "ok", "alerting", 2)
            assert rule["lastError"] == "" and rule["evaluationTime"] >= 0 and group["interval"] == 1

            # A restart while firing: the stored state says it was sent, so nothing is sent again.
            stopping = time.monotonic()
            assert server.terminate() == 0
            assert time.monotonic() - stopping < 20, "the server took too long to stop"
            server.start()
            send_calls(server, "gpt-4o-mini", errors=6, ok=4)  # still failing after the restart
            time.sleep(3)
            assert [m["json"]["status"] for m in receiver.messages()] == ["firing"]
            assert server.get("/api/v1/alerts").json()["data"]["alerts"][0]["state"] == "firing"

            # Errors stop: once the window holds none, the alert resolves, and says so once.
            resolved = receiver.wait_for(lambda m: len(m) == 2, timeout=WINDOW_S + 20)[1]
            assert resolved["json"]["status"] == "resolved"
            assert resolved["json"]["alert"]["fingerprint"] == body["alert"]["fingerprint"]
            _wait(lambda: not am_alerts(alertmanager), timeout=15)  # endsAt in the past: no longer active
            time.sleep(2)
            assert len(receiver.messages()) == 2
            assert server.get("/api/v1/alerts").json()["data"]["alerts"] == []
            events = server.get("/api/v1/alerts/history", rule="HighErrorRate").json()["data"]["events"]
            assert [e["to"] for e in reversed(events)] == ["pending", "firing", "resolved"]

            # Mute and unmute through the API.
            muted = httpx.post(f"{server.url}/api/v1/rules/HighErrorRate/mute", params={"for": "1h"}, timeout=10)
            assert muted.status_code == 200 and muted.json()["data"]["mutedUntil"]
            assert server.get("/api/v1/rules").json()["data"]["groups"][0]["rules"][0]["muted"] is True
            assert httpx.post(f"{server.url}/api/v1/rules/Nope/mute", timeout=10).status_code == 404
            assert httpx.post(f"{server.url}/api/v1/rules/HighErrorRate/unmute", timeout=10).status_code == 200
            print(f"\nfirst error span -> webhook: {firing_latency:.2f} s; -> Alertmanager: {am_latency:.2f} s "
                  f"(rules interval 1 s, for 2 s)")
        finally:
            if server.proc and server.proc.poll() is None:
                server.terminate()


def _wait(fetch, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        found = fetch()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_server_that_does_not_evaluate_serves_the_stored_state(tmp_path: Path) -> None:
    """A replica with --no-evaluate-alerts answers from what the evaluating one stored (here the same
    store, one process after the other: chDB opens a folder in one process at a time)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.replace("for: 2s", "for: 0s"))
    evaluating = ServerProcess(tmp_path / "data", extra_args=[
        "--rules-file", str(rules), "--rules-interval", "1s", "--no-alerts-default-rules"]).start()
    try:
        send_calls(evaluating, "gpt-4o", errors=5, ok=0)
        _wait(lambda: evaluating.get("/api/v1/alerts").json()["data"]["alerts"], timeout=20)
    finally:
        evaluating.terminate()
    reading = ServerProcess(tmp_path / "data", extra_args=[
        "--rules-file", str(rules), "--no-alerts-default-rules", "--no-evaluate-alerts"]).start()
    try:
        [alert] = reading.get("/api/v1/alerts").json()["data"]["alerts"]
        assert (alert["state"], alert["labels"]["model"], float(alert["value"])) == ("firing", "gpt-4o", 1.0)
        [rule] = reading.get("/api/v1/rules").json()["data"]["groups"][0]["rules"]
        assert (rule["state"], rule["health"], rule["muted"]) == ("firing", "unknown", False)
        assert httpx.post(f"{reading.url}/api/v1/rules/HighErrorRate/mute", timeout=10).status_code == 200
        [rule] = reading.get("/api/v1/rules").json()["data"]["groups"][0]["rules"]
        assert rule["muted"] is True and rule["mutedUntil"].startswith("2200-")
    finally:
        reading.terminate()
