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


def _cross_service_trace(demo: DemoRun) -> dict[str, Any] | None:
    """A complete trace touching every service. Each process exports on its own schedule, so a
    trace is only judged once all its spans are in: one root, and every parent present."""
    for trace in _traces(demo, status="ok"):
        ids = {s["span_id"] for s in trace["spans"]}
        roots = [s for s in trace["spans"] if not s["parent_span_id"]]
        linked = all(s["parent_span_id"] in ids for s in trace["spans"] if s["parent_span_id"])
        if {s["service"] for s in trace["spans"]} >= SERVICES and len(roots) == 1 and linked:
            return trace
    return None


def test_prints_the_ui_and_every_service_address(demo: DemoRun) -> None:
    text = demo.text()
    for key in ("ui", "chatbot", "retriever", "llm"):
        assert demo.state[key].rstrip("/").split("//")[1] in text.replace("\n", ""), key
    assert httpx.get(f"{demo.state['server']}/readyz", timeout=10).status_code == 200


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
    trace = _poll("a trace spanning chatbot, retriever and mock LLM", lambda: _cross_service_trace(demo))
    llm = [s["llm"] for s in trace["spans"] if s.get("llm") and s["llm"]["operation"] == "chat"]
    assert llm, "no LLM span in the trace"
    call = llm[0]
    assert call["input_tokens"] > 0 and call["output_tokens"] > 0
    assert call["cost_usd"] is not None and call["cost_usd"] > 0
    assert call["app"] == "llmlens-demo"


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
    assert wait_until_no_marked_processes(demo.marker) == []
    assert not (Path(demo.state["logs"]).parent / "demo.json").exists()
