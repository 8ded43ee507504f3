"""Lists longer than a page in a real headless Chromium, on a real server holding more than one page
of traces, log lines and sessions: "Load more" continues each list after its last row (the API's
keyset cursor) until nothing is left; a trace whose root span has not arrived says so; the query
examples name this store's service and model.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from tests.integration.otlp_requests import (
    MS,
    llm_attrs,
    log_request,
    make_log,
    make_span,
    new_span_id,
    new_trace_id,
    post,
    trace_request,
)
from tests.server_process import ServerProcess

pytestmark = pytest.mark.browser

SECOND = 1_000_000_000
TRACES = 104     # one session each; search pages hold 50, session pages 100
LOG_LINES = 230  # log pages hold 200
SERVICE = "paging-svc"
MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def paged_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    server = ServerProcess(tmp_path_factory.mktemp("paging-ui") / "data").start()
    try:
        base = datetime.now(UTC) - timedelta(minutes=8)
        spans = []
        for i in range(TRACES):
            trace_id, at = new_trace_id(), int((base + timedelta(seconds=3 * i)).timestamp() * SECOND)
            root = make_span("POST /chat", trace_id=trace_id, start_ns=at, duration_ms=30)
            attrs = {**llm_attrs(MODEL, 150, 5), "session.id": f"conv-{i:03d}"}
            spans += [root, make_span(f"chat {MODEL}", trace_id=trace_id, parent=root.span_id, start_ns=at + MS,
                                      duration_ms=20, attrs=attrs)]
        # A trace whose root span is still on its way: only a child, pointing at a parent not stored.
        orphan_trace = new_trace_id()
        spans.append(make_span("late child", trace_id=orphan_trace, parent=new_span_id(),
                               start_ns=int(base.timestamp() * SECOND), duration_ms=5, attrs={"orphan": "yes"}))
        assert post(server.url, "traces", trace_request(spans, service=SERVICE)).status_code == 200
        logs = [make_log(f"line {i:03d}", time_ns=int((base + timedelta(seconds=i)).timestamp() * SECOND))
                for i in range(LOG_LINES)]
        assert post(server.url, "logs", log_request(logs, service=SERVICE)).status_code == 200
        server.wait_for_spans(len(spans))
        yield server, orphan_trace.hex()
    finally:
        server.terminate()


def open_page(page, server: ServerProcess, path: str) -> None:
    page.goto(server.url + path)
    page.wait_for_selector("body[data-ready='ok']")


def load_more(page) -> None:
    before = int(page.evaluate("document.body.dataset.renders || '0'"))
    page.click("#more")
    page.wait_for_function(f"() => Number(document.body.dataset.renders || 0) > {before} && document.body.dataset.ready")


def rows(page, testid: str, attribute: str) -> list[str]:
    return page.eval_on_selector_all(f"[data-testid='{testid}'] tbody tr",
                                     f"(trs) => trs.map((tr) => tr.getAttribute('{attribute}'))")


def test_search_loads_more_until_every_match_is_shown(page, paged_server) -> None:
    server, _ = paged_server
    q = f'{{ resource.service.name = "{SERVICE}" && span.gen_ai.request.model = "{MODEL}" }}'
    open_page(page, server, f"/traces?q={quote(q)}")
    first = rows(page, "traces-table", "data-trace-id")
    assert len(first) == 50 and page.is_visible("#more")
    assert "more available" in page.inner_text("#result-count")
    load_more(page)
    assert len(rows(page, "traces-table", "data-trace-id")) == 100 and page.is_visible("#more")
    load_more(page)
    every = rows(page, "traces-table", "data-trace-id")
    assert len(every) == TRACES == len(set(every)) and every[:50] == first
    assert page.is_hidden("#more") and "more available" not in page.inner_text("#result-count")


def test_trace_without_its_root_says_so(page, paged_server) -> None:
    server, orphan = paged_server
    open_page(page, server, "/traces?q=" + quote('{ span.orphan = "yes" }'))
    assert rows(page, "traces-table", "data-trace-id") == [orphan]
    link = page.locator(f"[data-testid='traces-table'] a[data-trace-link='{orphan}']")
    assert "root span not received yet" in link.inner_text()
    link.click()
    page.wait_for_url(f"**/traces/{orphan}*")
    page.wait_for_selector("body[data-ready='ok']")
    assert page.inner_text("#page-title") == f"Trace: {SERVICE} · late child (root span not received yet)"


def test_logs_load_more_until_every_line_is_shown(page, paged_server) -> None:
    server, _ = paged_server
    open_page(page, server, f"/logs?service={SERVICE}")
    bodies = page.locator("[data-testid='logs-table'] td[data-col='body']")
    assert bodies.count() == 200 and page.is_visible("#more")
    assert bodies.first.inner_text() == f"line {LOG_LINES - 1:03d}"  # newest first
    load_more(page)
    texts = bodies.all_inner_texts()
    assert texts == [f"line {i:03d}" for i in reversed(range(LOG_LINES))]
    assert page.is_hidden("#more")


def test_sessions_load_more_until_every_session_is_shown(page, paged_server) -> None:
    server, _ = paged_server
    open_page(page, server, "/sessions")
    assert len(rows(page, "sessions-table", "data-session-id")) == 100 and page.is_visible("#more")
    load_more(page)
    every = rows(page, "sessions-table", "data-session-id")
    assert every == [f"conv-{i:03d}" for i in reversed(range(TRACES))]
    assert page.is_hidden("#more")


def test_query_examples_name_this_stores_service_and_model(page, paged_server) -> None:
    server, _ = paged_server
    open_page(page, server, "/traces")
    page.wait_for_selector(f"#examples button:has-text('{SERVICE}')")
    chips = page.locator("#examples button").all_inner_texts()
    assert any(f'"{MODEL}"' in chip for chip in chips)
    assert not any('"chatbot"' in chip for chip in chips)  # a service this store does not have
    named = page.locator(f"#examples button:has-text('{SERVICE}')")
    before = int(page.evaluate("document.body.dataset.renders || '0'"))
    named.click()
    page.wait_for_function(f"() => Number(document.body.dataset.renders || 0) > {before} && document.body.dataset.ready")
    assert len(rows(page, "traces-table", "data-trace-id")) == 50  # it finds traces
