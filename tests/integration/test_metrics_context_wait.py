"""/metrics and the stored view agree on the app and department of calls whose request span (which
sets them) comes in another export: before the calls (counted at once), after them (the calls wait for
it, context_wait.py), in the same export, or never (counted with app "" when the wait ends). Every call
is counted exactly once. A real `llmlens serve`, OTLP/HTTP, /metrics parsed as Prometheus parses it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.otlp_requests import (
    llm_attrs,
    make_span,
    new_span_id,
    new_trace_id,
    post,
    trace_request,
)
from tests.integration.test_metrics_endpoint import poll, scrape
from tests.server_process import ServerProcess

WAIT_S = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("context-wait") / "data",
                            extra_args=["--metrics-context-wait-s", str(WAIT_S)]).start()
    yield process
    if process.proc and process.proc.poll() is None:
        process.terminate()


def send(server: ServerProcess, *spans) -> None:
    response = post(server.url, "traces", trace_request(spans, service="ctx-app"))
    assert response.status_code == 200, response.text


def requests_by_app(server: ServerProcess, model: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for labels, value in scrape(server).get("llm_requests_total", {}).items():
        named = dict(labels)
        if named["model"] == model:
            found[named["app"]] = found.get(named["app"], 0.0) + value
    return found


def cost_departments(server: ServerProcess, model: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for labels, value in scrape(server).get("llm_cost_dollars_total", {}).items():
        named = dict(labels)
        if named["model"] == model:
            found[named["department"]] = found.get(named["department"], 0.0) + value
    return found


def stored_by(server: ServerProcess, model: str, key: str) -> dict[str, float]:
    answer = httpx.get(f"{server.url}/api/v1/llm/stats", params={"start": "-1h", "group_by": key, "model": model},
                       timeout=30)
    assert answer.status_code == 200, answer.text
    return {g[key]: float(g["requests"]) for g in answer.json()["groups"]}


def waiting(server: ServerProcess) -> float:
    return scrape(server)["llmlens_llm_calls_waiting_for_context"][()]


def test_metrics_count_each_call_once_with_its_traces_app_as_stored(server: ServerProcess) -> None:
    model, app, department = f"ctx-{uuid.uuid4().hex[:8]}", f"app-{uuid.uuid4().hex[:6]}", "dept-ctx"

    def trace():
        trace_id, root_id = new_trace_id(), new_span_id()
        root = make_span("handle_request", trace_id=trace_id, span_id=root_id, duration_ms=40,
                         attrs={"llmlens.app": app, "department": department})
        call = make_span(f"chat {model}", trace_id=trace_id, parent=root_id, duration_ms=20,
                         attrs={**llm_attrs(model, 100, 20), "gen_ai.usage.input_tokens": 100})
        return root, call

    later, earlier, together, never = trace(), trace(), trace(), trace()
    send(server, later[1])  # the SDK's common order: the call ends first and is exported first
    assert requests_by_app(server, model) == {}, "a call lacking its app is not counted before its wait"
    assert waiting(server) == 1
    send(server, later[0])
    send(server, earlier[0])
    send(server, earlier[1])
    send(server, *together)
    send(server, never[1])  # its request span never comes
    assert requests_by_app(server, model) == {app: 3.0}
    poll("the orphan call counted after its wait", lambda: requests_by_app(server, model).get("") == 1.0,
         timeout=WAIT_S + 10)
    assert waiting(server) == 0

    stored = stored_by(server, model, "app")
    assert stored == {app: 3.0, "": 1.0}
    assert requests_by_app(server, model) == stored
    assert stored_by(server, model, "department") == {department: 3.0, "": 1.0}
    assert set(cost_departments(server, model)) <= {department, ""}
    assert scrape(server)["llmlens_llm_calls_context_expired_total"][()] >= 1

    time.sleep(WAIT_S + 2)  # nothing is counted twice: not by the sweep, nor by a late request span
    send(server, never[0])
    time.sleep(1)
    assert requests_by_app(server, model) == {app: 3.0, "": 1.0}
