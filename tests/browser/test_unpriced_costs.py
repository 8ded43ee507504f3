"""Calls with no known price are never shown as a plain sum: a trace, session or total whose calls are
all unpriced reads "unpriced", a partly priced one "$x + n unpriced", in the API and on every page.

Traces sent (one session, "s-mixed", holds the first two):
  mixed    one gpt-4o-mini call (priced) and one acme-llm-1 call (no price known)
  unpriced one acme-llm-1 call
  priced   one gpt-4o-mini call
  plain    no LLM call at all
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from tests.integration.otlp_requests import MS, llm_attrs, make_span, new_trace_id, post, trace_request
from tests.server_process import ServerProcess

pytestmark = pytest.mark.browser
PRICED, UNPRICED = "gpt-4o-mini", "acme-llm-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    server = ServerProcess(tmp_path_factory.mktemp("ui-unpriced") / "data").start()
    try:
        now = time.time_ns() - 5 * 60_000 * MS
        traces = {"mixed": [PRICED, UNPRICED], "unpriced": [UNPRICED], "priced": [PRICED], "plain": []}
        ids: dict[str, str] = {}
        spans = []
        for i, (name, models) in enumerate(traces.items()):
            trace_id = new_trace_id()
            ids[name] = trace_id.hex()
            start = now + i * 1000 * MS
            root = make_span(f"turn {name}", trace_id=trace_id, start_ns=start, duration_ms=900)
            spans.append(root)
            for j, model in enumerate(models):
                attrs = {**llm_attrs(model, 1000, 200), "gen_ai.conversation.id": "s-mixed" if i < 2 else f"s-{name}"}
                spans.append(make_span(f"chat {model}", trace_id=trace_id, parent=root.span_id,
                                       start_ns=start + (1 + j * 400) * MS, duration_ms=300, attrs=attrs))
        assert post(server.url, "traces", trace_request(spans, service="costs-app")).status_code == 200
        yield server, ids
    finally:
        server.kill()


def api(server: ServerProcess, path: str, **params) -> dict:
    answer = httpx.get(server.url + path, params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def priced_cost(server: ServerProcess, trace_id: str) -> float:
    """What the trace's priced calls cost, from the trace detail (the one place each call is listed)."""
    calls = [s["llm"] for s in api(server, f"/api/v1/traces/{trace_id}")["spans"] if s["llm"]]
    return sum(c["cost_usd"] for c in calls if c["priced"])


def test_trace_list_and_search_count_unpriced_calls(server) -> None:
    server, ids = server
    listed = {item["trace_id"]: item for item in api(server, "/api/v1/traces", start="-1h")["items"]}
    found = {item["trace_id"]: item for item in api(server, "/api/v1/search", q='{ name =~ "turn.*" }',
                                                    start="-1h")["items"]}
    expected = {"mixed": (2, 1), "unpriced": (1, 1), "priced": (1, 0), "plain": (0, 0)}
    for name, (calls, unpriced) in expected.items():
        for items in (listed, found):
            item = items[ids[name]]
            assert (item["llm_calls"], item["unpriced_requests"]) == (calls, unpriced), name
            assert item["cost_usd"] == pytest.approx(priced_cost(server, ids[name])), name
    assert listed[ids["mixed"]]["cost_usd"] > 0 and listed[ids["unpriced"]]["cost_usd"] == 0


def test_sessions_api_counts_unpriced_calls(server) -> None:
    server, ids = server
    session = api(server, "/api/v1/sessions/s-mixed")
    assert session["unpriced_requests"] == 2 and session["llm_calls"] == 3
    assert {t["trace_id"]: t["unpriced_requests"] for t in session["traces"]} == {ids["mixed"]: 1, ids["unpriced"]: 1}


def cost_cell(page, trace_id: str) -> str:
    return page.locator(f"[data-testid='traces-table'] tr[data-trace-id='{trace_id}'] td[data-col='cost_usd']").inner_text()


def test_the_trace_list_never_shows_an_unpriced_cost_as_a_sum(page, server) -> None:
    server, ids = server
    for path in ("/traces", "/traces?q=" + quote('{ name =~ "turn.*" }')):
        page.goto(server.url + path)
        page.wait_for_selector("body[data-ready='ok']")
        mixed_cost = priced_cost(server, ids["mixed"])
        assert cost_cell(page, ids["unpriced"]) == "unpriced", path
        assert cost_cell(page, ids["mixed"]).startswith("$") and cost_cell(page, ids["mixed"]).endswith("+ 1 unpriced")
        assert cost_cell(page, ids["mixed"]) != "$0.00" and mixed_cost > 0
        assert "unpriced" not in cost_cell(page, ids["priced"])
        assert cost_cell(page, ids["plain"]) == "$0.00"


def test_trace_session_overview_and_costs_pages_say_what_is_unpriced(page, server) -> None:
    server, ids = server
    page.goto(f"{server.url}/traces/{ids['unpriced']}")
    page.wait_for_selector("body[data-ready='ok']")
    assert page.locator("[data-testid='tile-cost'] .value").inner_text() == "unpriced"
    page.goto(f"{server.url}/traces/{ids['mixed']}")
    page.wait_for_selector("body[data-ready='ok']")
    assert page.locator("[data-testid='tile-cost'] .value").inner_text().endswith("+ 1 unpriced")

    page.goto(f"{server.url}/sessions/s-mixed")
    page.wait_for_selector("body[data-ready='ok']")
    assert page.locator("[data-testid='tile-cost'] .value").inner_text().endswith("+ 2 unpriced")
    assert page.locator(f"#turns li[data-trace-id='{ids['unpriced']}']").inner_text().endswith("tokens · unpriced")
    assert page.locator(f"#turns li[data-trace-id='{ids['mixed']}']").inner_text().endswith("+ 1 unpriced")

    page.goto(f"{server.url}/sessions")
    page.wait_for_selector("body[data-ready='ok']")
    row = page.locator("[data-testid='sessions-table'] tr[data-session-id='s-mixed'] td[data-col='cost_usd']")
    assert row.inner_text().endswith("+ 2 unpriced")
    unpriced_session = page.locator("[data-testid='sessions-table'] tr[data-session-id='s-priced'] td[data-col='cost_usd']")
    assert "unpriced" not in unpriced_session.inner_text()

    page.goto(f"{server.url}/")
    page.wait_for_selector("body[data-ready='ok']")
    assert page.locator("[data-testid='tile-cost'] .value").inner_text().endswith("+ 2 unpriced")

    page.goto(f"{server.url}/costs")
    page.wait_for_selector("body[data-ready='ok']")
    assert page.locator("[data-testid='tile-cost'] .value").inner_text().endswith("+ 2 unpriced")
    spend = page.locator(f"[data-testid='costs-table'] tr[data-key='{UNPRICED}'] td[data-col='cost_usd']")
    assert spend.inner_text() == "unpriced"
    priced = page.locator(f"[data-testid='costs-table'] tr[data-key='{PRICED}'] td[data-col='cost_usd']")
    assert priced.inner_text().startswith("$") and "unpriced" not in priced.inner_text()
    assert f"{UNPRICED} (unpriced)" in page.locator("#chart-spend").inner_text()  # the chart's legend
