"""The SQL page in a real headless Chromium against the seeded server: the query runs from the URL
and from Ctrl-Enter, the result table and the time chart show what the API answers, the schema
lists the store's tables and inserts names, and refused SQL shows the server's message."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import httpx
import pytest

pytestmark = pytest.mark.browser

PER_MINUTE = ("SELECT toStartOfMinute(Timestamp) AS minute, count() AS spans FROM otel_traces "
              "GROUP BY minute ORDER BY minute")


def api_sql(server, query: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/api/v1/sql", params={"query": query}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def wait_rendered(page, renders_before: int) -> None:
    page.wait_for_function(f"() => Number(document.body.dataset.renders || 0) > {renders_before}")


def renders(page) -> int:
    return int(page.evaluate("() => Number(document.body.dataset.renders || 0)"))


def test_a_query_in_the_url_runs_with_a_table_and_a_time_chart(page, seeded_server) -> None:
    server, _ = seeded_server
    expected = api_sql(server, PER_MINUTE)
    assert len(expected["rows"]) >= 2  # the seeded traffic spans 30 minutes
    page.goto(f"{server.url}/sql?q={quote(PER_MINUTE)}")
    page.wait_for_selector("body[data-ready='ok']")
    assert page.locator("a[data-nav='sql']").get_attribute("aria-current") == "page"
    assert page.input_value("#sql-editor") == PER_MINUTE
    headers = page.locator("[data-testid='sql-table'] th").all_inner_texts()
    assert [h.split("\n")[0] for h in headers] == ["minute", "spans"]
    assert "DateTime" in headers[0] and "UInt64" in headers[1]
    cells = page.locator("[data-testid='sql-table'] tbody tr td:nth-child(2)").all_inner_texts()
    assert [int(c) for c in cells] == [row[1] for row in expected["rows"]]
    assert page.locator("#chart").is_visible() and page.locator("#chart canvas").count() >= 1
    assert f"{len(expected['rows'])} rows" in page.inner_text("[data-testid='result-info']")


def test_ctrl_enter_runs_the_edited_query_and_keeps_it_in_the_url(page, seeded_server) -> None:
    server, seeded = seeded_server
    page.goto(f"{server.url}/sql")
    page.wait_for_selector("body[data-ready]")
    query = "SELECT uniqExact(TraceId) AS traces FROM llm_calls"  # one trace a seeded turn
    page.fill("#sql-editor", query)
    before = renders(page)
    page.press("#sql-editor", "Control+Enter")
    wait_rendered(page, before)
    assert page.inner_text("[data-testid='sql-table'] tbody td") == str(seeded.llm_calls)
    assert parse_qs(urlparse(page.url).query)["q"] == [query]
    assert page.locator("#chart").is_hidden()  # no time column, no chart
    page.reload()
    page.wait_for_selector("body[data-ready='ok']")
    assert page.input_value("#sql-editor") == query
    assert page.inner_text("[data-testid='sql-table'] tbody td") == str(seeded.llm_calls)


def test_refused_and_bad_sql_show_the_servers_message(page, seeded_server) -> None:
    server, _ = seeded_server
    page.goto(f"{server.url}/sql?q={quote('SELECT 1 AS one')}")
    page.wait_for_selector("body[data-ready='ok']")
    for query, says in (("DROP TABLE otel_traces", "DROP statements are refused"),
                        ("SELECT * FROM file('/etc/passwd')", "file() is refused"),
                        ("SELECT nope FROM otel_traces", "nope")):
        page.fill("#sql-editor", query)
        before = renders(page)
        page.click("[data-testid='run']")
        wait_rendered(page, before)
        assert page.get_attribute("body", "data-ready") == "error"
        assert says in page.inner_text("[data-testid='error']")
        assert page.locator("[data-testid='sql-table']").count() == 0  # the earlier result is gone
    assert api_sql(server, "SELECT count() > 0 FROM otel_traces")["rows"] == [[1]]


def test_the_schema_lists_tables_and_inserts_names(page, seeded_server) -> None:
    server, _ = seeded_server
    page.goto(f"{server.url}/sql")
    page.wait_for_selector("[data-testid='sql-schema'] details[data-table='otel_traces']")
    tables = page.locator("[data-testid='sql-schema'] details").evaluate_all("els => els.map(e => e.dataset.table)")
    assert {"otel_traces", "otel_logs", "llm_calls", "llm_scores"} <= set(tables)
    page.fill("#sql-editor", "SELECT  FROM llm_calls")
    page.evaluate("() => document.getElementById('sql-editor').setSelectionRange(7, 7)")
    details = page.locator("[data-testid='sql-schema'] details[data-table='llm_calls']")
    details.locator("summary").click(position={"x": 200, "y": 5})  # open it (not on the name's button)
    column = details.locator("li").filter(has=page.get_by_role("button", name="RequestModel", exact=True))
    column.get_by_role("button").click()
    assert page.input_value("#sql-editor") == "SELECT RequestModel FROM llm_calls"
    assert "LowCardinality(String)" in column.inner_text()


def test_every_example_runs(page, seeded_server) -> None:
    server, _ = seeded_server
    page.goto(f"{server.url}/sql")
    page.wait_for_selector("body[data-ready]")
    examples = page.locator("[data-testid='example']")
    assert examples.count() >= 3
    for i in range(examples.count()):
        before = renders(page)
        examples.nth(i).click()
        wait_rendered(page, before)
        assert page.get_attribute("body", "data-ready") == "ok", page.inner_text("#message")
        assert page.locator("[data-testid='sql-table'] tbody tr").count() >= 1
