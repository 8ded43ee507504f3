"""The compare page in Chromium: reached by ticking two traces in Traces and by "compare with a typical
trace" from a trace; what it shows equals GET /api/v1/traces/compare."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.browser.test_pages import api, open_page

pytestmark = pytest.mark.browser


def wait_ready(page) -> None:
    page.wait_for_selector("body[data-ready]")


def test_tick_two_traces_and_compare_them(page, seeded_server) -> None:
    server, seeded = seeded_server
    # two answered turns of one service with different prompts and models: the same shape, different texts
    ok = [t for t in seeded.turns if not t.error and t.service == "chatbot"]
    first, second = next((x, y) for x in ok for y in ok if x.prompt != y.prompt and x.model != y.model)
    open_page(page, server, "/traces?range=24h")
    button = page.locator("#compare-selected")
    assert button.is_disabled()
    page.locator(f"input[data-compare='{first.trace_id}']").check()
    assert button.is_disabled()
    page.locator(f"input[data-compare='{second.trace_id}']").check()
    assert button.is_enabled()
    button.click()
    page.wait_for_url("**/compare?*")
    wait_ready(page)
    assert parse_qs(urlparse(page.url).query) == {"a": [first.trace_id], "b": [second.trace_id]}
    result = api(server, "/api/v1/traces/compare", a=first.trace_id, b=second.trace_id)

    totals = page.locator("[data-testid='totals-table']")
    assert totals.locator("[data-testid='trace-a']").get_attribute("href") == f"/traces/{first.trace_id}"
    tokens_row = totals.locator("tr[data-total='input-tokens'] td").all_inner_texts()
    assert tokens_row[1:3] == [f"{first.input_tokens:,}", f"{second.input_tokens:,}"]
    delta = totals.locator("tr[data-total='input-tokens'] .delta").get_attribute("data-delta")
    assert float(delta) == second.input_tokens - first.input_tokens == result["difference"]["input_tokens"]
    cost = totals.locator("tr[data-total='cost'] td").all_inner_texts()
    if "acme-llm-1" in (first.model, second.model):  # no known price: no cost difference either
        assert "unpriced" in cost[1] + cost[2] and cost[3] == "—" and result["difference"]["cost_usd"] is None
    else:
        assert result["difference"]["cost_usd"] is not None and cost[3] != "—"

    rows = page.locator("[data-testid='aligned-table'] tbody tr")
    assert rows.count() == len(result["rows"]) == 3
    assert [r.get_attribute("data-match") for r in rows.all()] == ["both"] * 3
    assert page.locator("#align-counts").inner_text() == "3 matched · 0 only in A · 0 only in B"

    page.locator("[data-testid='aligned-table'] button[data-select-row]").click()
    pair = page.locator("[data-testid='pair-table']")
    model = pair.locator("tr[data-fact='Model'] td").all_inner_texts()
    assert model[1].startswith(first.model) and model[2].startswith(second.model)
    assert pair.locator("tr[data-fact='Model']").get_attribute("data-changed") == "true"
    prompt = page.locator("[data-testid='input-diff']")
    assert prompt.get_attribute("data-same") == "false"
    assert f"-user: {first.prompt}" in prompt.locator(".del").all_inner_texts()[0]
    assert f"+user: {second.prompt}" in prompt.locator(".add").all_inner_texts()[0]
    # the selected pair is in the URL: a reload shows it again
    assert parse_qs(urlparse(page.url).query)["row"] == ["2"]
    page.reload()
    wait_ready(page)
    assert page.locator("[data-testid='input-diff']").get_attribute("data-same") == "false"


def test_failed_turn_against_an_answered_one(page, seeded_server) -> None:
    server, seeded = seeded_server
    failed = next(t for t in seeded.turns if t.error)
    answered = next(t for t in seeded.turns if not t.error and t.service == failed.service)
    open_page(page, server, f"/compare?a={answered.trace_id}&b={failed.trace_id}")
    chat = page.locator("[data-testid='aligned-table'] tbody tr[data-name^='chat ']")
    assert "error in B" in chat.inner_text()
    assert page.locator("[data-testid='totals-table'] tr[data-total='errors'] .delta").get_attribute(
        "data-delta") == "2"  # the root and the chat span failed in B, none in A
    chat.locator("button[data-select-row]").click()
    assert page.locator("[data-testid='output-diff']").get_attribute("data-same") == "false"


def test_compare_with_a_typical_trace_from_the_trace_view(page, seeded_server) -> None:
    server, seeded = seeded_server
    turn = max((t for t in seeded.turns if t.service == "chatbot"), key=lambda t: t.duration_ms)
    open_page(page, server, f"/traces/{turn.trace_id}")
    page.locator("[data-testid='compare-typical']").click()
    page.wait_for_url("**/compare?*")
    wait_ready(page)
    query = parse_qs(urlparse(page.url).query)
    assert query["b"] == [turn.trace_id]
    typical = api(server, "/api/v1/traces/typical", service="chatbot", name="POST /chat", start="-24h",
                  exclude=turn.trace_id)
    assert query["a"] == [typical["trace_id"]] and typical["trace_id"] != turn.trace_id
    assert page.locator("[data-testid='trace-b']").get_attribute("href") == f"/traces/{turn.trace_id}"
    assert page.locator("[data-testid='aligned-table'] tbody tr").count() >= 3


def test_bad_and_unknown_ids_and_no_ids(page, seeded_server) -> None:
    server, seeded = seeded_server
    open_page(page, server, "/compare")
    assert "Pick two traces" in page.locator("[data-testid='empty']").inner_text()
    open_page(page, server, f"/compare?a=nonsense&b={seeded.turns[0].trace_id}")
    assert page.locator("body").get_attribute("data-ready") == "error"
    assert "Error 400" in page.locator("[data-testid='error']").inner_text()
    unknown = "ab" * 16
    open_page(page, server, f"/compare?a={seeded.turns[0].trace_id}&b={unknown}")
    error = page.locator("[data-testid='error']").inner_text()
    assert "Error 404" in error and unknown in error
    assert httpx.get(f"{server.url}/compare", timeout=10).status_code == 200
