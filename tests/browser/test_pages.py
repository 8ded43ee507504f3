"""Each page in a real headless Chromium against a real server holding known spans.

The numbers a page shows must equal the API's numbers (and the seeded truth where it is known).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

pytestmark = pytest.mark.browser


def api(server, path: str, **params: Any) -> Any:
    response = httpx.get(server.url + path, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def open_page(page, server, path: str) -> None:
    page.goto(server.url + path)
    page.wait_for_selector("body[data-ready]")


def after_render(page, action) -> None:
    """Run an action that reloads the page's data and wait for the new render."""
    before = int(page.evaluate("document.body.dataset.renders || '0'"))
    action()
    # A function, not an expression: Playwright evaluates an expression with eval(), which the CSP forbids.
    page.wait_for_function(f"() => Number(document.body.dataset.renders || 0) > {before} && document.body.dataset.ready")


def tile(page, name: str) -> tuple[float | None, str]:
    element = page.locator(f"[data-testid='tile-{name}']")
    raw = element.get_attribute("data-value")
    return (float(raw) if raw not in ("", None) else None), element.locator(".value").inner_text()


def column(page, table: str, col: str) -> list[str]:
    return page.locator(f"[data-testid='{table}'] tbody td[data-col='{col}']").all_inner_texts()


# -- overview -----------------------------------------------------------------------------------

def test_overview_numbers_equal_the_api_and_the_seeded_traffic(page, seeded_server) -> None:
    server, seeded = seeded_server
    open_page(page, server, "/")
    data = api(server, "/api/v1/overview", start="-24h")
    totals = data["totals"]
    stats = api(server, "/api/v1/llm/stats", start="-24h")["groups"][0]  # the core API, independently

    assert totals["requests"] == seeded.llm_calls == stats["requests"]
    assert totals["errors"] == seeded.errors == stats["errors"]
    assert totals["cost_usd"] == pytest.approx(stats["cost_usd"])
    successes, text = tile(page, "successes")
    assert successes == totals["successes"] and text == f"{totals['successes']:,}"
    errors, text = tile(page, "errors")
    assert errors == totals["errors"] and text == f"{totals['errors']:,}"
    cost, text = tile(page, "cost")
    assert cost == pytest.approx(totals["cost_usd"]) and text.startswith("$")
    assert tile(page, "models")[0] == totals["models"] == len({t.model for t in seeded.turns})
    assert tile(page, "latency-p95")[0] == pytest.approx(stats["latency_p95_ms"])
    assert tile(page, "ttft-p50")[0] == pytest.approx(stats["ttft_p50_ms"])
    assert tile(page, "output-tps")[0] == pytest.approx(stats["output_tokens_per_second"])
    assert tile(page, "tokens")[0] == totals["input_tokens"] + totals["output_tokens"]
    assert totals["input_tokens"] == sum(t.input_tokens for t in seeded.turns)

    shown = {li.get_attribute("data-model"): int(li.get_attribute("data-requests"))
             for li in page.locator("[data-testid='models'] li").all()}
    assert shown == {m["model"]: m["requests"] for m in data["models"]}
    assert column(page, "top-errors-table", "error_type") == ["RateLimitError"]
    assert column(page, "top-errors-table", "requests") == [str(seeded.errors)]
    costs = [float(r.get_attribute("data-cost")) for r in page.locator("[data-testid='cost-by-table'] tbody tr").all()]
    assert costs == pytest.approx([row["cost_usd"] for row in data["cost_by"]])
    assert set(column(page, "cost-by-table", "department")) == {"cx", "research"}
    for chart in ("latency", "ttft", "tps", "volume", "tokens", "tokens-cost", "errors", "histogram"):
        assert page.locator(f"#chart-{chart} canvas").count() == 1, chart


def test_overview_filters_live_in_the_url_and_change_the_numbers(page, seeded_server) -> None:
    server, seeded = seeded_server
    open_page(page, server, "/")
    after_render(page, lambda: page.select_option("#f-service", "chatbot"))
    assert parse_qs(urlparse(page.url).query)["service"] == ["chatbot"]
    expected = api(server, "/api/v1/overview", start="-24h", service="chatbot")["totals"]
    assert expected["requests"] == sum(t.service == "chatbot" for t in seeded.turns)
    assert tile(page, "successes")[0] == expected["successes"]
    assert tile(page, "errors")[0] == expected["errors"]

    # A shared link restores the same view.
    open_page(page, server, "/?service=chatbot&range=6h")
    assert page.input_value("#f-service") == "chatbot"
    assert page.input_value("#range") == "6h"
    assert tile(page, "successes")[0] == expected["successes"]
    assert page.locator("a[data-nav='traces']").get_attribute("href") == "/traces?range=6h"


def test_overview_empty_state_says_what_to_do(page, seeded_server) -> None:
    server, _ = seeded_server
    open_page(page, server, "/?range=custom&start=2001-01-01T00:00:00Z&end=2001-01-02T00:00:00Z")
    empty = page.locator("[data-testid='empty']")
    assert "point an OTel SDK" in empty.inner_text()
    assert server.url in empty.inner_text()
    assert page.locator("#dashboard").is_hidden()


def test_api_errors_are_shown_not_swallowed(page, seeded_server) -> None:
    server, _ = seeded_server
    open_page(page, server, "/?range=custom&start=yesterday-ish")
    assert page.evaluate("document.body.dataset.ready") == "error"
    message = page.locator("[data-testid='error']").inner_text()
    assert "400" in message and "start" in message


# -- traces, trace view, logs -------------------------------------------------------------------

def test_trace_query_then_click_through_to_the_trace_and_its_logs(page, seeded_server) -> None:
    server, seeded = seeded_server
    query = '{ span.gen_ai.request.model = "gpt-4o-mini" && status = error }'
    open_page(page, server, "/traces")
    page.fill("#q", query)
    after_render(page, lambda: page.click("#run-query"))
    assert parse_qs(urlparse(page.url).query)["q"] == [query]

    expected = api(server, "/api/v1/search", q=query, start="-24h", limit=100)["items"]
    truth = {t.trace_id for t in seeded.turns if t.model == "gpt-4o-mini" and t.error}
    assert {item["trace_id"] for item in expected} == truth and truth
    rows = page.locator("[data-testid='traces-table'] tbody tr")
    assert [r.get_attribute("data-trace-id") for r in rows.all()] == [i["trace_id"] for i in expected]

    trace_id = expected[0]["trace_id"]
    page.click(f"a[data-trace-link='{trace_id}']")
    page.wait_for_url(f"**/traces/{trace_id}")
    page.wait_for_selector("body[data-ready='ok']")
    trace = api(server, f"/api/v1/traces/{trace_id}")
    assert page.locator("#waterfall .row").count() == len(trace["spans"]) == 3
    llm_span = next(s for s in trace["spans"] if s["llm"] and s["llm"]["operation"] == "chat")
    page.click(f"#waterfall .row[data-span-id='{llm_span['span_id']}']")
    details = page.locator("[data-testid='llm-details']").inner_text()
    assert f"{llm_span['llm']['input_tokens']:,} / {llm_span['llm']['output_tokens']:,}" in details
    assert "RateLimitError" in details
    assert page.locator("[data-testid='llm-input']").inner_text().startswith("user: ")
    assert page.locator("[data-testid='breakdown-table']").inner_text().count("%") >= 2

    logs = api(server, "/api/v1/logs", trace_id=trace_id, start="-24h")["items"]
    assert len(logs) == 2
    assert sorted(column(page, "trace-logs-table", "body")) == sorted(log["body"] for log in logs)

    page.click("[data-testid='open-logs']")
    page.wait_for_url(re.compile(r"/logs\?"))
    page.wait_for_selector("body[data-ready='ok']")
    assert page.input_value("#f-trace_id") == trace_id
    assert sorted(column(page, "logs-table", "body")) == sorted(log["body"] for log in logs)
    page.locator(f"[data-testid='logs-table'] a[data-trace-link='{trace_id}']").first.click()
    page.wait_for_url(re.compile(rf"/traces/{trace_id}"))
    page.wait_for_selector("body[data-ready='ok']")


def test_every_example_query_runs(page, seeded_server) -> None:
    server, _ = seeded_server
    open_page(page, server, "/traces")
    examples = page.locator("#examples button")
    assert examples.count() >= 5
    for i in range(examples.count()):
        after_render(page, lambda i=i: examples.nth(i).click())
        assert page.evaluate("document.body.dataset.ready") == "ok", page.input_value("#q")


def test_query_syntax_error_is_shown_with_its_position(page, seeded_server) -> None:
    server, _ = seeded_server
    open_page(page, server, "/traces")
    page.fill("#q", "{ duration > }")
    after_render(page, lambda: page.press("#q", "Control+Enter"))
    error = page.locator("[data-testid='error']")
    assert "column 14" in error.inner_text()
    assert error.locator("pre").inner_text() == "{ duration > }\n             ^"


def test_trace_filters_use_the_traces_api(page, seeded_server) -> None:
    server, seeded = seeded_server
    open_page(page, server, "/traces")
    page.select_option("#f-status", "error")
    after_render(page, lambda: page.click("#apply-filters"))
    expected = api(server, "/api/v1/traces", status="error", start="-24h", limit=50)["items"]
    assert len(expected) == seeded.errors
    ids = [r.get_attribute("data-trace-id") for r in page.locator("[data-testid='traces-table'] tbody tr").all()]
    assert ids == [i["trace_id"] for i in expected]


def test_logs_page_filters_by_severity_and_text(page, seeded_server) -> None:
    server, seeded = seeded_server
    open_page(page, server, "/logs?range=24h")
    page.select_option("#f-severity", "error")
    after_render(page, lambda: page.click("#search-logs"))
    expected = api(server, "/api/v1/logs", severity="error", start="-24h", limit=500)["items"]
    assert len(expected) == seeded.errors
    assert page.locator("[data-testid='logs-table'] tbody tr").count() == seeded.errors
    page.select_option("#f-severity", "")
    page.fill("#f-q", "handling question in sess-002")
    after_render(page, lambda: page.click("#search-logs"))
    assert page.locator("[data-testid='logs-table'] tbody tr").count() == 3  # one per turn of sess-002


# -- sessions and costs -------------------------------------------------------------------------

def test_sessions_list_and_a_session_in_order(page, seeded_server) -> None:
    server, seeded = seeded_server
    open_page(page, server, "/sessions")
    items = api(server, "/api/v1/sessions", start="-7d")["items"]
    rows = page.locator("[data-testid='sessions-table'] tbody tr").all()
    assert [r.get_attribute("data-session-id") for r in rows] == [i["session_id"] for i in items]
    assert [int(r.get_attribute("data-turns")) for r in rows] == [i["turns"] for i in items] == [3] * 6

    page.click("a[data-session-link='sess-001']")
    page.wait_for_url("**/sessions/sess-001")
    page.wait_for_selector("body[data-ready='ok']")
    detail = api(server, "/api/v1/sessions/sess-001")
    shown = [li.get_attribute("data-trace-id") for li in page.locator("#turns li").all()]
    truth = [t.trace_id for t in sorted(seeded.turns, key=lambda t: t.start_ns) if t.session_id == "sess-001"]
    assert shown == [t["trace_id"] for t in detail["traces"]] == truth
    assert tile(page, "cost")[0] == pytest.approx(detail["cost_usd"])
    # Each turn previews its prompt and, when the call succeeded, the response (read from the spans).
    prompts = {t.trace_id: t.prompt for t in seeded.turns}
    for turn in detail["traces"]:
        assert turn["input_preview"] == f"user: {prompts[turn['trace_id']]}"
        assert turn["output_preview"] == ("" if turn["error"] else
                                          f"assistant: Here is what I found about: {prompts[turn['trace_id']].lower()}")
    assert prompts[truth[0]] in page.locator(f"#turns li[data-trace-id='{truth[0]}']").inner_text()
    page.click(f"a[data-trace-link='{truth[0]}']")
    page.wait_for_url(f"**/traces/{truth[0]}")


def test_costs_page_counts_unpriced_calls(page, seeded_server) -> None:
    server, seeded = seeded_server
    open_page(page, server, "/costs")
    data = api(server, "/api/v1/costs", start="-7d", group_by="model")
    unpriced_truth = sum(t.model == "acme-llm-1" for t in seeded.turns)
    assert tile(page, "unpriced")[0] == data["totals"]["unpriced_requests"] == unpriced_truth
    assert tile(page, "priced")[0] == data["totals"]["priced_requests"] == seeded.llm_calls - unpriced_truth
    assert tile(page, "cost")[0] == pytest.approx(data["totals"]["cost_usd"])
    assert tile(page, "per-1k")[0] == pytest.approx(data["totals"]["cost_per_1k_tokens"])
    assert column(page, "unpriced-table", "model") == ["acme-llm-1"]
    rows = page.locator("[data-testid='costs-table'] tbody tr").all()
    assert {r.get_attribute("data-key"): float(r.get_attribute("data-cost")) for r in rows} == pytest.approx(
        {r["key"]: r["cost_usd"] for r in data["breakdown"]})

    after_render(page, lambda: page.select_option("#group-by", "department"))
    assert set(column(page, "costs-table", "key")) == {"cx", "research"}
    assert page.locator("#chart-spend canvas").count() == 1


# -- accessibility basics -------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/traces", "/sessions", "/logs", "/costs"])
def test_every_control_has_a_label_and_the_page_fits_1280px(page, seeded_server, path: str) -> None:
    server, _ = seeded_server
    open_page(page, server, path)
    unlabeled = page.evaluate("""[...document.querySelectorAll('input, select, textarea')]
        .filter((el) => !el.labels?.length && !el.getAttribute('aria-label')).map((el) => el.id || el.name)""")
    assert unlabeled == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"


def test_waterfall_works_from_the_keyboard(page, seeded_server) -> None:
    server, seeded = seeded_server
    open_page(page, server, f"/traces/{seeded.turns[0].trace_id}")
    first = page.locator("#waterfall .row").first
    first.focus()
    page.keyboard.press("ArrowDown")
    focused = page.evaluate("document.activeElement.dataset.spanId")
    page.keyboard.press("Enter")
    assert page.locator(f"#waterfall .row[data-span-id='{focused}']").get_attribute("aria-pressed") == "true"
    assert parse_qs(urlparse(page.url).query)["span"] == [focused]


def test_custom_time_range_and_auto_refresh(page, seeded_server) -> None:
    server, seeded = seeded_server
    open_page(page, server, "/")
    page.select_option("#range", "custom")
    assert page.locator("#range-from").is_visible()
    # Only the first half of the seeded half hour: a window the presets cannot express.
    first = min(t.start_ns for t in seeded.turns) / 1e9
    page.evaluate("""([from, to]) => {
        const local = (s) => { const d = new Date(s * 1000); d.setMinutes(d.getMinutes() - d.getTimezoneOffset());
                               return d.toISOString().slice(0, 16); };
        document.querySelector('#range-from').value = local(from);
        document.querySelector('#range-to').value = local(to);
    }""", [first - 60, first + 15 * 60])
    after_render(page, lambda: page.click(".custom-range button"))
    query = parse_qs(urlparse(page.url).query)
    assert query["range"] == ["custom"]
    expected = api(server, "/api/v1/overview", start=query["start"][0], end=query["end"][0])["totals"]
    assert 0 < expected["requests"] < seeded.llm_calls
    assert tile(page, "successes")[0] == expected["successes"]
    assert tile(page, "errors")[0] == expected["errors"]

    page.select_option("#auto-refresh", "10s")
    assert parse_qs(urlparse(page.url).query)["refresh"] == ["10s"]
    renders = int(page.evaluate("document.body.dataset.renders"))
    page.wait_for_function(f"() => Number(document.body.dataset.renders) > {renders}", timeout=25_000)
