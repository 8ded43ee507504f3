"""Views of the demo's real traffic in a real headless Chromium: `llmlens demo` runs its streamed
scenario for a few seconds (the real openai client streaming from the mock LLM through the RAG
chatbot), then a server opens the store it left, and the pages are checked against what is stored.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.demo.conftest import new_marker_env, wait_until_no_marked_processes
from tests.server_process import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DEMO_SECONDS = 12


@dataclass
class DemoStore:
    server: ServerProcess

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(self.server.url + path, params=params, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStore]:
    data_dir = tmp_path_factory.mktemp("demo-views")
    marker, env = new_marker_env()
    argv = [sys.executable, "-m", "llmlens.demo", "--ports", "auto", "--data-dir", str(data_dir),
            "--duration", str(DEMO_SECONDS), "--rate", "2", "--seed", "7", "--scenarios", "long"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
        pytest.fail(f"the demo did not stop after --duration {DEMO_SECONDS}:\n{output}")
    assert proc.returncode == 0, output
    assert not wait_until_no_marked_processes(marker), "the demo left processes behind"
    server = ServerProcess(Path(data_dir) / "store").start()
    try:
        yield DemoStore(server)
    finally:
        server.terminate()


def streamed_traces(demo: DemoStore) -> list[dict[str, Any]]:
    """Stored demo traces whose HTTP handler returned before the LLM stream it started ended."""
    found = []
    for item in demo.api("/api/v1/traces", start="-1h", limit=40)["items"]:
        trace = demo.api(f"/api/v1/traces/{item['trace_id']}")
        spans = {s["span_id"]: s for s in trace["spans"]}
        chats = [s for s in trace["spans"] if (s.get("llm") or {}).get("operation") == "chat"
                 and (s["llm"] or {}).get("streaming")]
        endpoints = [s for s in trace["spans"] if s["name"] == "fastapi.endpoint" and s["service"] == "demo-chatbot"]
        if len(chats) == 1 and endpoints and _end(chats[0]) > _end(endpoints[0]):
            found.append({"item": item, "chat": chats[0], "spans": spans})
    return found


def _end(span: dict[str, Any]) -> float:
    return int(span["start_unix_nano"]) / 1e6 + span["duration_ms"]


def test_streamed_trace_breakdown_counts_each_instant_once(demo_store: DemoStore, page) -> None:
    traces = streamed_traces(demo_store)
    assert len(traces) >= 5, "the demo's streamed scenario stored too few streamed traces to check"
    for found in traces[:5]:
        trace_id = found["item"]["trace_id"]
        page.goto(f"{demo_store.server.url}/traces/{trace_id}")
        page.wait_for_selector("body[data-ready]")
        duration = float(page.get_attribute('[data-testid="tile-duration"]', "data-value"))
        rows = page.locator('[data-testid="breakdown-table"] tbody tr')
        own = {rows.nth(i).get_attribute("data-step"): float(rows.nth(i).get_attribute("data-self-ms"))
               for i in range(rows.count())}
        # Each instant of the trace is counted once: the steps add up to at most its duration
        # (before, the LLM wait was counted twice and the sum exceeded it by ~80%).
        assert sum(own.values()) <= duration * 1.0001, (trace_id, own, duration)
        assert sum(own.values()) >= duration * 0.95, (trace_id, own, duration)
        # The wait for the streamed answer is the generation's (the chat call and the mock LLM's own
        # spans under it), not the HTTP handler's that returned the stream before it ended.
        chat_ms = found["chat"]["duration_ms"]
        assert own["generation"] >= 0.95 * chat_ms, (trace_id, own, chat_ms)
        assert own["generation"] == max(own.values()), own
        handler = next(s for s in found["spans"].values() if s["service"] == "demo-chatbot" and s["kind"] == "server")
        assert own.get(handler["name"], 0.0) < 0.1 * duration, (trace_id, own)
        shares = page.locator('[data-testid="breakdown-table"] td[data-col="share"]').all_inner_texts()
        assert sum(float(s.rstrip("%")) for s in shares) <= 100.5, shares


PAGES = ["/", "/traces", "/logs", "/sessions", "/costs", "/services"]


def test_every_page_opens_on_the_range_the_data_needs(demo_store: DemoStore, page) -> None:
    # Seconds of traffic that ended a minute or two ago: 15 minutes hold them, on every page.
    activity = demo_store.api("/api/v1/activity")
    assert activity["default_range"] == "15m", activity
    for path in PAGES:
        page.goto(demo_store.server.url + path)
        page.wait_for_selector("body[data-ready]")
        assert page.input_value("#range") == "15m", path
        assert "range=15m" in page.url, page.url
        # The navigation links carry it to the next page.
        assert page.locator("a[data-nav='traces']").get_attribute("href") == "/traces?range=15m"
        # Costs read as decimals on every page (the demo's calls cost fractions of a cent).
        assert not re.search(r"\$-?\d+(\.\d+)?e[-+]?\d", page.inner_text("main")), path
    # The overview's quality panel reads the same range (the demo scores its answers' groundedness).
    page.goto(demo_store.server.url + "/")
    page.wait_for_selector("#quality-summary[data-loaded]")
    links = page.eval_on_selector_all("#quality-summary table a", "(links) => links.map((a) => a.getAttribute('href'))")
    assert links and all(link.endswith("&range=15m") for link in links), links
    # A range in the URL is kept.
    page.goto(demo_store.server.url + "/logs?range=6h")
    page.wait_for_selector("body[data-ready]")
    assert page.input_value("#range") == "6h"


def test_overview_request_rate_is_the_demos_rate(demo_store: DemoStore, page) -> None:
    page.goto(demo_store.server.url + "/")
    page.wait_for_selector("body[data-ready]")
    api = demo_store.api("/api/v1/overview", start="-15m")["totals"]
    shown = float(page.get_attribute('[data-testid="tile-request-rate"]', "data-value"))
    assert shown == pytest.approx(api["request_rate_per_s"])
    # The demo started two streamed conversations a second: about two model calls a second, whatever
    # the range (it was 0.5/min over a day before).
    assert 1.0 < shown < 4.0, shown
    renders = int(page.evaluate("document.body.dataset.renders || '0'"))
    page.select_option("#range", "24h")
    page.wait_for_function(f"() => Number(document.body.dataset.renders || 0) > {renders} && document.body.dataset.ready")
    assert "range=24h" in page.url
    assert float(page.get_attribute('[data-testid="tile-request-rate"]', "data-value")) == pytest.approx(shown, rel=0.01)
    assert "/s" in page.inner_text('[data-testid="tile-request-rate"]')
