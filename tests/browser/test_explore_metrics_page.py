"""The OTLP metrics explorer (/explore/metrics) in Chromium: pick a metric, filter and group by its
attributes, histograms as percentiles; what it shows equals GET /api/v1/metrics/query."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.browser.test_pages import after_render, api, open_page
from tests.integration.otlp_requests import post
from tests.integration.test_metric_explorer_api import SECOND, _request
from tests.server_process import ServerProcess

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def metrics_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("explore") / "data").start()
    try:
        base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
        for service in ("api", "worker"):
            assert post(server.url, "metrics", _request(service, int(base.timestamp()) * SECOND)).status_code == 200
        yield server
    finally:
        server.terminate()


def rows(page) -> dict[str, dict[str, str]]:
    """The series table: labels (as JSON) -> column -> text."""
    found = {}
    for row in page.locator("[data-testid='series-table'] tbody tr").all():
        cells = {cell.get_attribute("data-col"): cell.inner_text() for cell in row.locator("td").all()}
        found[row.get_attribute("data-labels")] = cells
    return found


def test_metric_list_and_a_gauge_grouped_and_filtered(page, metrics_server) -> None:
    server = metrics_server
    open_page(page, server, "/explore/metrics?range=1h")
    listed = {b.get_attribute("data-metric") for b in page.locator("[data-testid='metric-list'] button").all()}
    assert {m["name"] for m in api(server, "/api/v1/metrics", start="-1h")["items"]} == listed
    assert {"xtest.queue.depth", "xtest.requests", "xtest.latency", "xtest.exp.size", "xtest.summary"} <= listed
    page.fill("#metric-search", "queue")
    assert [b.get_attribute("data-metric") for b in page.locator("[data-testid='metric-list'] button").all()] == [
        "xtest.queue.depth"]
    after_render(page, lambda: page.click("[data-metric='xtest.queue.depth']"))
    assert page.locator("#h-metric").inner_text() == "xtest.queue.depth"
    assert "gauge" in page.locator("#metric-about").inner_text() and "items waiting" in page.locator("#metric-about").inner_text()
    assert page.locator("#chart-metric").get_attribute("role") == "img"

    after_render(page, lambda: page.check("[data-group-key='q']"))
    assert parse_qs(urlparse(page.url).query)["group_by"] == ["q"]
    shown = rows(page)
    answer = api(server, "/api/v1/metrics/query", name="xtest.queue.depth", start="-1h", group_by="q")
    assert set(shown) == {json.dumps(s["labels"], separators=(",", ":")) for s in answer["series"]}
    for line in answer["series"]:
        latest = [v for v in line["values"]["value"] if v is not None][-1]
        assert shown[json.dumps(line["labels"], separators=(",", ":"))]["value"] == f"{latest:,.3f}".rstrip("0").rstrip(".")

    page.select_option("#filter-key", "service")
    page.select_option("#filter-value", "worker")
    after_render(page, lambda: page.click("#add-filter"))
    assert [li.get_attribute("data-filter") for li in page.locator("#active-filters li").all()] == ["service:worker"]
    shown = rows(page)
    assert shown['{"q":"slow"}']["value"] == "1,140"  # worker, slow, the last minute: 1000 + 100 + 40
    after_render(page, lambda: page.click("[aria-label='Remove filter service:worker']"))
    assert page.locator("#active-filters li").count() == 0
    # the view is in the URL: a reload shows the same grouping
    page.reload()
    page.wait_for_selector("body[data-ready]")
    assert page.locator("[data-group-key='q']").is_checked()


def test_histogram_as_percentiles_and_a_counter_as_a_rate(page, metrics_server) -> None:
    server = metrics_server
    open_page(page, server, "/explore/metrics?range=1h&metric=xtest.latency&group_by=route")
    assert page.locator("#measure").input_value() == "percentiles"
    assert sorted(b.get_attribute("data-percentile") for b in page.locator("[data-percentile]:checked").all()) == [
        "50", "90", "99"]
    label = page.locator("#chart-metric").get_attribute("aria-label")
    assert "p50 route=/a" in label and "p99 route=/b" in label
    after_render(page, lambda: page.uncheck("[data-percentile='99']"))
    assert "p99" not in page.locator("#chart-metric").get_attribute("aria-label")
    assert parse_qs(urlparse(page.url).query)["percentile"] == ["50", "90"]
    answer = api(server, "/api/v1/metrics/query", name="xtest.latency", start="-1h", group_by="route",
                 percentile=["50", "90"])
    assert set(rows(page)) == {json.dumps(s["labels"], separators=(",", ":")) for s in answer["series"]}
    assert {c for r in rows(page).values() for c in r} >= {"p50", "p90", "count", "mean"}

    open_page(page, server, "/explore/metrics?range=1h&metric=xtest.requests")
    assert page.locator("#measure").input_value() == "rate"  # a monotonic counter reads as a rate
    assert "cumulative, monotonic" in page.locator("#metric-about").inner_text()
    after_render(page, lambda: page.select_option("#measure", "value"))
    assert rows(page)['{}']["value"] == "20"  # the two routes' last values: 15 + 5


def test_no_metrics_and_no_match(page, metrics_server) -> None:
    server = metrics_server
    open_page(page, server, "/explore/metrics?range=custom&start=2001-01-01T00:00:00Z&end=2001-01-02T00:00:00Z")
    assert "No OTLP metrics" in page.locator("[data-testid='empty']").inner_text()
    open_page(page, server, "/explore/metrics?range=1h&metric=xtest.queue.depth&filter=q:nowhere")
    assert page.locator("[data-testid='no-series']").is_visible()
    open_page(page, server, "/explore/metrics?range=1h&metric=xtest.never")
    assert "Error 404" in page.locator("[data-testid='error']").inner_text()
    assert httpx.get(server.url + "/metrics", timeout=10).headers["content-type"].startswith("text/plain")
