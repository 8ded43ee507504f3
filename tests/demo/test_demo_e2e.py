"""`llmlens demo` end to end: real processes on free loopback ports, checked through the server's API.

One demo run (module fixture) serves every assertion; it is stopped with SIGINT like a Ctrl-C,
and the last test checks that it exited cleanly and left no process behind.
"""

from __future__ import annotations

import json
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

from llmlens.demo.apps import APPS
from tests.demo.conftest import new_marker_env, scrape, wait_until_no_marked_processes

pytestmark = pytest.mark.slow

SERVICES = {"demo-chatbot", "demo-retriever", "demo-mock-llm"}
STARTUP_TIMEOUT_S = 120.0
API_WAIT_S = 60.0


@dataclass
class DemoRun:
    proc: subprocess.Popen
    marker: str
    state: dict[str, Any]
    output: list[str] = field(default_factory=list)

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.state['server']}{path}", params=params, timeout=30.0)
        response.raise_for_status()
        return response.json()

    def text(self) -> str:
        return "".join(self.output)

    @property
    def reopen_command(self) -> str:
        return f"llmlens serve --data-dir {Path(self.state['logs']).parent / 'store'}"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    data_dir = tmp_path_factory.mktemp("demo")
    marker, env = new_marker_env()
    argv = [
        sys.executable, "-m", "llmlens.demo", "--ports", "auto", "--data-dir", str(data_dir),
        "--duration", "90", "--rate", "3", "--concurrency", "4", "--error-rate", "0.1", "--seed", "7",
        "--scenarios", "simple:3,long,multi_turn,burst:0.5,error_storm:0.5",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    state_file = data_dir / "demo.json"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not state_file.exists():
        assert proc.poll() is None, f"demo exited with {proc.returncode}:\n{''.join(output)}"
        assert time.monotonic() < deadline, f"demo not up after {STARTUP_TIMEOUT_S} s:\n{''.join(output)}"
        time.sleep(0.2)
    run = DemoRun(proc, marker, json.loads(state_file.read_text()), output)
    yield run
    if proc.poll() is None:  # a failed test must not leave the demo running
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    reader.join(timeout=5)


def _poll(description: str, find: Callable[[], Any], timeout_s: float = API_WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = find()
        if found:
            return found
        assert time.monotonic() < deadline, f"gave up waiting for {description}"
        time.sleep(1.0)


def _traces(demo: DemoRun, **filters: Any) -> list[dict[str, Any]]:
    items = demo.api("/api/v1/traces", service="demo-chatbot", limit=40, **filters)["items"]
    return [demo.api(f"/api/v1/traces/{item['trace_id']}") for item in items]


def _cross_service_trace(
    demo: DemoRun, where: Callable[[dict[str, Any]], bool] = lambda _: True
) -> dict[str, Any] | None:
    """A complete trace touching every service. Each process exports on its own schedule, so a
    trace is only judged once all its spans are in: one root, and every parent present."""
    for trace in _traces(demo, status="ok"):
        ids = {s["span_id"] for s in trace["spans"]}
        roots = [s for s in trace["spans"] if not s["parent_span_id"]]
        linked = all(s["parent_span_id"] in ids for s in trace["spans"] if s["parent_span_id"])
        if {s["service"] for s in trace["spans"]} >= SERVICES and len(roots) == 1 and linked and where(trace):
            return trace
    return None


def _chat_calls(trace: dict[str, Any]) -> list[dict[str, Any]]:
    return [s["llm"] for s in trace["spans"] if s.get("llm") and s["llm"]["operation"] == "chat"]


def test_prints_the_ui_and_every_service_address(demo: DemoRun) -> None:
    text = demo.text()
    for key in ("ui", "chatbot", "retriever", "llm"):
        assert demo.state[key].rstrip("/").split("//")[1] in text.replace("\n", ""), key
    assert httpx.get(f"{demo.state['server']}/readyz", timeout=10).status_code == 200
    assert f"open it again with: {demo.reopen_command}\n" in text  # where the data is, before it ends


def test_every_demo_service_serves_parseable_metrics(demo: DemoRun) -> None:
    chatbot = _poll("calls to both upstreams in the chatbot's /metrics", lambda: _after_upstream_calls(demo))
    assert {"chatbot_chunks_sent", "chatbot_http_requests", "chatbot_http_request_duration_seconds"} <= set(
        chatbot
    )
    chunks = {s.name: s.value for s in chatbot["chatbot_chunks_sent"]}
    assert chunks["chatbot_chunks_sent_count"] > 0
    retriever = scrape(f"{demo.state['retriever']}/metrics")
    assert {"retriever_searches", "retriever_index_size", "retriever_http_requests"} <= set(retriever)
    assert scrape(f"{demo.state['llm'].removesuffix('/v1')}/metrics")  # the mock's own (vLLM-style) families


def _after_upstream_calls(demo: DemoRun) -> dict[str, list] | None:
    families = scrape(f"{demo.state['chatbot']}/metrics")
    calls = [
        s for s in families.get("chatbot_upstream_calls", []) if s.name.endswith("_total") and s.value > 0
    ]
    return families if {s.labels["upstream"] for s in calls} >= {"retriever", "llm"} else None


def test_one_request_is_one_trace_across_chatbot_retriever_and_llm(demo: DemoRun) -> None:
    # Polls until one trace holds all three services with one root and no dangling parent.
    trace = _poll("a trace spanning chatbot, retriever and mock LLM", lambda: _cross_service_trace(demo))
    spans = {s["span_id"]: s for s in trace["spans"]}
    root = next(s for s in spans.values() if not s["parent_span_id"])
    assert root["service"] == "demo-traffic"
    for service in ("demo-retriever", "demo-mock-llm"):
        # The downstream service's entry span hangs under a span of the chatbot.
        entry = min(
            (s for s in spans.values() if s["service"] == service), key=lambda s: s["start_unix_nano"]
        )
        assert spans[entry["parent_span_id"]]["service"] == "demo-chatbot", service
    names = {s["name"] for s in spans.values() if s["service"] == "demo-chatbot"}
    assert {"retrieve", "build context", "generate"} <= names
    build = next(s for s in spans.values() if s["name"] == "build context")
    assert int(build["attributes"]["rag.chunks_sent"]) >= 1
    assert float(build["attributes"]["rag.score.avg"]) > 0
    assert int(build["attributes"]["rag.context.chars"]) > 0


def test_llm_spans_carry_tokens_and_cost(demo: DemoRun) -> None:
    def priced(trace: dict[str, Any]) -> bool:
        return any(call["priced"] for call in _chat_calls(trace))

    trace = _poll("a priced LLM call in a complete trace", lambda: _cross_service_trace(demo, priced))
    call = next(call for call in _chat_calls(trace) if call["priced"])
    assert call["input_tokens"] > 0 and call["output_tokens"] > 0
    assert call["cost_usd"] is not None and call["cost_usd"] > 0
    app = next(app for app in APPS if app.name == call["app"])
    assert call["department"] == app.department
    assert call["user_id"].startswith(f"{app.user_prefix}-")
    root = next(s for s in trace["spans"] if not s["parent_span_id"])
    assert root["attributes"]["llmlens.app"] == app.name  # the traffic's context reached every service


def test_root_spans_are_named_by_route(demo: DemoRun) -> None:
    def roots() -> set[str] | None:
        names = {t["root_name"] for t in demo.api("/api/v1/traces", service="demo-traffic", limit=200)["items"]}
        return names if len(names) >= 2 else None

    assert _poll("requests to both chat routes", roots) == {"POST /v1/chat", "POST /api/chat"}


def test_traffic_covers_models_providers_apps_users_and_sessions(demo: DemoRun) -> None:
    def models() -> dict[str, dict[str, Any]] | None:
        groups = demo.api("/api/v1/llm/stats", start="-1h", group_by=["provider", "model"])["groups"]
        found = {g["model"]: g for g in groups}
        return found if {"gpt-4o-mini", "claude-haiku-4-5", "phi3"} <= set(found) else None

    by_model = _poll("calls to an OpenAI, an Anthropic and a local model", models)
    assert len(by_model) >= 3
    assert {g["provider"] for g in by_model.values()} >= {"openai", "anthropic"}
    assert by_model["claude-haiku-4-5"]["provider"] == "anthropic"  # through the gateway, as Anthropic's
    assert by_model["claude-haiku-4-5"]["cost_usd"] > 0 and by_model["gpt-4o-mini"]["cost_usd"] > 0
    assert by_model["phi3"]["unpriced_requests"] > 0 and not by_model["phi3"]["cost_usd"]  # no list price
    unpriced = demo.api("/api/v1/costs", start="-1h", group_by="model")["unpriced"]
    assert [u["model"] for u in unpriced] == ["phi3"]

    apps = {row["key"] for row in demo.api("/api/v1/costs", start="-1h", group_by="app")["breakdown"]}
    assert apps == {app.name for app in APPS}
    departments = {row["key"] for row in demo.api("/api/v1/costs", start="-1h", group_by="department")["breakdown"]}
    assert departments == {app.department for app in APPS}

    users = demo.api("/api/v1/costs", start="-1h", group_by="user")["breakdown"]
    assert len(users) >= 10
    assert any(row["requests"] >= 3 for row in users)  # users come back
    assert any(row["cost_usd"] > 0 for row in users)

    sessions = demo.api("/api/v1/sessions", start="-1h", limit=100)["items"]
    conversations = [s for s in sessions if s["turns"] >= 3]
    assert conversations, "no multi-turn session"
    assert all(len(s["users"]) == 1 and len(s["apps"]) == 1 for s in conversations)  # one user, one app
    assert len({s["users"][0] for s in sessions}) >= 5


def test_streamed_conversations_send_their_history(demo: DemoRun) -> None:
    def history_per_turn(session_id: str) -> list[int] | None:
        """History messages the chatbot got at each turn, once every turn's chatbot spans are in."""
        turns = sorted(demo.api(f"/api/v1/sessions/{session_id}")["traces"], key=lambda t: t["turn"])
        if {t["root_name"] for t in turns} != {"POST /api/chat"}:
            return None
        found = []
        for turn in turns:
            spans = demo.api(f"/api/v1/traces/{turn['trace_id']}")["spans"]
            built = [s for s in spans if s["name"] == "build context"]
            if not built:
                return None
            found.append(int(built[0]["attributes"]["rag.history.messages"]))
        return found

    def streamed_conversation() -> list[int] | None:
        for session in demo.api("/api/v1/sessions", start="-1h", limit=100)["items"]:
            if session["turns"] >= 3 and not session["errors"] and (found := history_per_turn(session["session_id"])):
                return found
        return None

    history = _poll("a streamed multi-turn session", streamed_conversation)
    assert history == [2 * i for i in range(len(history))]  # each turn sends the earlier questions and answers


def test_streamed_calls_record_time_to_first_token(demo: DemoRun) -> None:
    def streamed() -> dict[str, Any] | None:
        for trace in _traces(demo, status="ok"):
            for span in trace["spans"]:
                llm = span.get("llm")
                if llm and llm["streaming"] and llm["ttft_ms"] and llm["output_tokens"] > 0:
                    return llm
        return None

    llm = _poll("a streamed LLM call with TTFT", streamed)
    assert 0 < llm["ttft_ms"] < 60_000


def test_injected_failures_become_error_spans(demo: DemoRun) -> None:
    def failed() -> list[dict[str, Any]]:
        return [s for t in _traces(demo, status="error") for s in t["spans"] if s["status"] == "error"]

    errors = _poll("error spans", failed)
    assert {s["service"] for s in errors} & {"demo-chatbot", "demo-mock-llm", "demo-retriever"}


def test_logs_are_correlated_with_traces(demo: DemoRun) -> None:
    def trace_with_logs() -> list[dict[str, Any]] | None:
        for trace in _traces(demo, status="ok")[:20]:
            records = demo.api("/api/v1/logs", trace_id=trace["trace_id"])["items"]
            if records:
                return records
        return None

    records = _poll("logs carrying a trace id", trace_with_logs)
    assert any("answered" in json.dumps(r) or "search" in json.dumps(r) for r in records)


def test_quality_scores_are_stored_per_answer(demo: DemoRun) -> None:
    def scored() -> list[dict[str, Any]] | None:
        scores = demo.api("/api/v1/scores", name="groundedness")["items"]
        return scores or None

    scores = _poll("groundedness scores", scored)
    score = scores[0]
    assert 0.0 <= float(score["value"]) <= 1.0
    assert demo.api(f"/api/v1/traces/{score['trace_id']}")["scores"]


def test_ctrl_c_stops_everything_and_prints_a_summary(demo: DemoRun) -> None:
    demo.proc.send_signal(signal.SIGINT)
    assert demo.proc.wait(timeout=60) == 0, demo.text()
    assert "Traffic summary" in demo.text()
    last = demo.text().rstrip().splitlines()[-1]
    assert last.startswith("The demo's data stays in ") and f"Open it again with: {demo.reopen_command} " in last
    assert wait_until_no_marked_processes(demo.marker) == []
    assert not (Path(demo.state["logs"]).parent / "demo.json").exists()
