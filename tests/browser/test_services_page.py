"""The Services page in a real headless Chromium, against a real server holding known traffic: the
UI tests' seeded LLM conversations (two services calling OpenAI, which sends no spans) plus
demo-shaped calls between services (chatbot -> retriever -> an in-process FAISS index, chatbot ->
a Postgres database). The page runs under the server's Content-Security-Policy; the page fixture
fails a test on any violation or JavaScript error.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.browser.seed import Seeded, build, post
from tests.integration.otlp_requests import make_span, new_span_id, new_trace_id, trace_request
from tests.integration.otlp_requests import post as post_otlp
from tests.server_process import ServerProcess

pytestmark = pytest.mark.browser

RETRIEVALS = 5  # chatbot -> retriever calls; the second one fails in the retriever
WINDOW = {"start": "-1h"}


def api(server: ServerProcess, path: str, **params: Any) -> Any:
    response = httpx.get(server.url + path, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def services_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Seeded]]:
    server = ServerProcess(tmp_path_factory.mktemp("services-ui") / "data").start()
    try:
        seeded = build(sessions=4, turns_per_session=2, span_minutes=20)
        post(server.url, seeded)
        chatbot, retriever = [], []
        now = time.time_ns() - 10 * 60 * 1_000_000_000
        for i in range(RETRIEVALS):
            tid, root, call, served = new_trace_id(), new_span_id(), new_span_id(), new_span_id()
            at = now + i * 1_000_000_000
            chatbot.append(make_span("POST /v1/chat", trace_id=tid, span_id=root, start_ns=at, duration_ms=90,
                                     kind=Span.SPAN_KIND_SERVER))
            chatbot.append(make_span("POST", trace_id=tid, span_id=call, parent=root, start_ns=at + 1_000_000,
                                     duration_ms=30, kind=Span.SPAN_KIND_CLIENT))
            retriever.append(make_span("POST /search", trace_id=tid, span_id=served, parent=call,
                                       start_ns=at + 2_000_000, duration_ms=25, kind=Span.SPAN_KIND_SERVER,
                                       error=i == 1))
            retriever.append(make_span("vector index search", trace_id=tid, parent=served, start_ns=at + 3_000_000,
                                       duration_ms=2, attrs={"db.system.name": "faiss"}))
            chatbot.append(make_span("SELECT sessions", trace_id=tid, parent=root, start_ns=at + 40_000_000,
                                     duration_ms=3, kind=Span.SPAN_KIND_CLIENT,
                                     attrs={"db.system": "postgresql", "db.name": "sessions"}))
        for service, spans in (("retriever", retriever), ("chatbot", chatbot)):
            assert post_otlp(server.url, "traces", trace_request(spans, service=service)).status_code == 200
        server.wait_for_spans(3 * seeded.llm_calls + len(chatbot) + len(retriever))
        yield server, seeded
    finally:
        if server.proc and server.proc.poll() is None:
            server.terminate()


def open_services(page, server: ServerProcess, query: str = "") -> None:
    page.goto(f"{server.url}/services{query}")
    page.wait_for_selector("body[data-ready]")


def after_render(page, action) -> None:
    before = int(page.evaluate("document.body.dataset.renders || '0'"))
    action()
    # A function, not an expression: Playwright evaluates an expression with eval(), which the CSP forbids.
    page.wait_for_function(f"() => Number(document.body.dataset.renders || 0) > {before} && document.body.dataset.ready")


def edge(page, client: str, server: str):
    return page.locator(f"[data-testid='graph-edge'][data-client='{client}'][data-server='{server}']")


def node(page, node_id: str):
    return page.locator(f"[data-testid='graph-node'][data-id='{node_id}']")


def click_on_the_line(page, link) -> None:
    """A real mouse click on the middle of an edge's curve (its bounding box's centre may be off it)."""
    x, y = link.locator("path.line").evaluate("""(path) => {
        const p = path.getPointAtLength(path.getTotalLength() / 2);
        const m = path.getScreenCTM();
        return [p.x * m.a + p.y * m.c + m.e, p.x * m.b + p.y * m.d + m.f];
    }""")
    page.mouse.click(x, y)


def test_the_graph_shows_the_api_nodes_and_edges(page, services_server) -> None:
    server, seeded = services_server
    open_services(page, server)
    assert page.evaluate("document.body.dataset.ready") == "ok"
    assert page.locator("a[data-nav='services']").get_attribute("aria-current") == "page"
    graph = api(server, "/api/v1/service-graph", **WINDOW)

    drawn = {n.get_attribute("data-id"): (n.get_attribute("data-kind"), n.get_attribute("data-type"))
             for n in page.locator("[data-testid='graph-node']").all()}
    assert drawn == {n["id"]: (n["kind"], n["type"]) for n in graph["nodes"]}
    # What the seeded traffic and the extra calls make, by kind of node.
    assert drawn == {"chatbot": ("service", "service"), "rag-api": ("service", "service"),
                     "retriever": ("service", "service"), "user": ("virtual", "user"), "openai": ("virtual", "llm"),
                     "faiss": ("virtual", "vector_store"), "sessions": ("virtual", "database")}
    lines = {(e.get_attribute("data-client"), e.get_attribute("data-server")):
             (int(e.get_attribute("data-requests")), e.get_attribute("data-level"))
             for e in page.locator("[data-testid='graph-edge']").all()}
    assert set(lines) == {(e["client"], e["server"]) for e in graph["edges"]}
    for e in graph["edges"]:
        assert lines[e["client"], e["server"]][0] == e["requests"]
    # The seeded LLM calls go to the provider, errors and all; the retriever's failure colours its edge.
    calls = {(e["client"], e["server"]): e for e in graph["edges"]}
    assert calls["chatbot", "openai"]["requests"] + calls["rag-api", "openai"]["requests"] == seeded.llm_calls
    assert calls["chatbot", "retriever"]["requests"] == RETRIEVALS
    assert lines["chatbot", "retriever"][1] == "bad"  # 1 in 5 failed
    assert lines["retriever", "faiss"][1] == "ok"
    # Nodes are sized by traffic: the busiest service is drawn bigger than the quietest node.
    radius = {n.get_attribute("data-id"): float(n.get_attribute("data-radius"))
              for n in page.locator("[data-testid='graph-node']").all()}
    assert radius["chatbot"] > radius["faiss"]
    # Kinds of node have their own shapes: a hexagon for the LLM provider, a cylinder for stores.
    assert node(page, "openai").locator("polygon").count() == 1
    assert node(page, "faiss").locator("ellipse").count() == 1
    assert node(page, "chatbot").locator("circle").count() == 1
    assert page.locator("#legend li").count() == 9
    summary = page.locator("#graph-summary").inner_text()
    assert f"{len(graph['edges'])} edges" in summary and "3 services" in summary
    # Every node and edge is a link with a text alternative.
    assert "openai" in node(page, "openai").get_attribute("aria-label")
    assert "p95" in edge(page, "chatbot", "retriever").get_attribute("aria-label")


def test_a_click_on_an_edge_opens_the_traces_behind_it(page, services_server) -> None:
    server, _ = services_server
    open_services(page, server, "?range=6h")
    link = edge(page, "chatbot", "retriever")
    query = parse_qs(urlparse(link.get_attribute("href")).query)
    assert query["range"] == ["6h"]
    click_on_the_line(page, link)
    page.wait_for_url(re.compile(r"/traces\?"))
    page.wait_for_selector("body[data-ready='ok']")
    q = parse_qs(urlparse(page.url).query)["q"][0]
    assert page.input_value("#q") == q
    expected = api(server, "/api/v1/search", q=q, start="-6h", limit=100)["items"]
    assert len(expected) == RETRIEVALS
    shown = [r.get_attribute("data-trace-id") for r in page.locator("[data-testid='traces-table'] tbody tr").all()]
    assert shown == [item["trace_id"] for item in expected]


def test_nodes_open_their_traces_from_mouse_and_keyboard(page, services_server) -> None:
    server, seeded = services_server
    open_services(page, server)
    node(page, "retriever").locator(".shape").click()
    page.wait_for_url(re.compile(r"/traces\?service=retriever"))
    page.wait_for_selector("body[data-ready='ok']")
    assert page.input_value("#f-service") == "retriever"
    assert page.locator("[data-testid='traces-table'] tbody tr").count() == RETRIEVALS

    open_services(page, server)
    node(page, "openai").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/traces\?q="))
    page.wait_for_selector("body[data-ready='ok']")
    rows = page.locator("[data-testid='traces-table'] tbody tr")
    assert rows.count() == seeded.llm_calls  # every seeded turn called the provider
    assert {r.get_attribute("data-trace-id") for r in rows.all()} == {t.trace_id for t in seeded.turns}


def test_red_table_and_filters_live_in_the_url(page, services_server) -> None:
    server, _ = services_server
    open_services(page, server)
    red = api(server, "/api/v1/red", kind="server,client", limit=200, **WINDOW)
    rows = page.locator("[data-testid='red-table'] tbody tr")
    assert [(r.get_attribute("data-service"), r.get_attribute("data-span-name")) for r in rows.all()] == [
        (r["service"], r["span_name"]) for r in red["rows"]]
    search = next(r for r in red["rows"] if r["span_name"] == "POST /search")
    shown = page.locator("[data-testid='red-table'] tr[data-span-name='POST /search']")
    assert shown.get_attribute("data-errors") == "1" and search["errors"] == 1
    assert shown.locator("td[data-col='error_rate']").inner_text() == "20%"
    assert shown.locator("td[data-col='requests']").inner_text() == str(RETRIEVALS)

    after_render(page, lambda: page.select_option("#f-kind", "server"))
    assert parse_qs(urlparse(page.url).query)["kind"] == ["server"]
    assert {r.get_attribute("data-kind") for r in rows.all()} == {"server"}
    after_render(page, lambda: page.select_option("#f-service", "retriever"))
    assert parse_qs(urlparse(page.url).query)["service"] == ["retriever"]
    graph = api(server, "/api/v1/service-graph", service="retriever", **WINDOW)
    assert {(e.get_attribute("data-client"), e.get_attribute("data-server"))
            for e in page.locator("[data-testid='graph-edge']").all()} == {
        (e["client"], e["server"]) for e in graph["edges"]} == {("chatbot", "retriever"), ("retriever", "faiss")}
    assert [r.get_attribute("data-span-name") for r in rows.all()] == ["POST /search"]

    # A shared link restores the same view; an operation opens its traces.
    open_services(page, server, "?service=retriever&kind=server&range=6h")
    assert page.input_value("#f-service") == "retriever"
    assert page.input_value("#f-kind") == "server"
    assert page.input_value("#range") == "6h"
    page.locator("[data-testid='red-table'] td[data-col='span_name'] a").first.click()
    page.wait_for_url(re.compile(r"/traces\?"))
    query = parse_qs(urlparse(page.url).query)
    assert (query["service"], query["name"], query["range"]) == (["retriever"], ["POST /search"], ["6h"])


def test_empty_and_error_states(page, services_server) -> None:
    server, _ = services_server
    open_services(page, server, "?range=custom&start=2001-01-01T00:00:00Z&end=2001-01-02T00:00:00Z")
    empty = page.locator("[data-testid='empty']")
    assert "No spans in this time range" in empty.inner_text() and server.url in empty.inner_text()
    assert page.locator("#content").is_hidden()

    open_services(page, server, "?service=nobody")
    assert "No spans of nobody" in page.locator("[data-testid='empty']").inner_text()

    open_services(page, server, "?range=custom&start=yesterday-ish")
    assert page.evaluate("document.body.dataset.ready") == "error"
    message = page.locator("[data-testid='error']").inner_text()
    assert "400" in message and "start" in message


def test_every_control_has_a_label_and_the_page_fits_1280px(page, services_server) -> None:
    server, _ = services_server
    open_services(page, server)
    unlabeled = page.evaluate("""[...document.querySelectorAll('input, select, textarea')]
        .filter((el) => !el.labels?.length && !el.getAttribute('aria-label')).map((el) => el.id || el.name)""")
    assert unlabeled == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    # uPlot is not loaded on a page that draws no chart.
    assert page.locator("script[src*='uPlot']").count() == 0
