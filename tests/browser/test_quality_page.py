"""Quality scores in Chromium: on the trace and span they belong to, in the overview's panel and on
the quality page. The scores are recorded by the real SDK (llmlens.score with a trace and span id,
as an evaluator does) in another process, on the seeded conversation traces."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.browser.seed import Seeded, Turn, build, post
from tests.browser.test_pages import after_render, api, column, open_page, tile
from tests.server_process import ServerProcess

pytestmark = pytest.mark.browser

EVALUATOR = """
import json, sys
import llmlens
llmlens.init(service_name="evaluator", endpoint=sys.argv[1])
for name, value, trace_id, span_id, label, comment in json.loads(sys.argv[2]):
    llmlens.score(name, value, trace_id=trace_id, span_id=span_id, label=label, comment=comment)
llmlens.shutdown()
"""


@dataclass
class Scored:
    server: ServerProcess
    seeded: Seeded
    helpfulness: dict[str, float]   # trace id -> value, recorded on the trace's chat span
    thumbs: dict[str, str]          # trace id -> label, recorded on the trace's root span
    chat_span: dict[str, str]       # trace id -> its chat span id
    unscored: Turn


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scored]:
    server = ServerProcess(tmp_path_factory.mktemp("quality") / "data").start()
    try:
        seeded = build(sessions=4, turns_per_session=3, span_minutes=30)
        post(server.url, seeded)
        server.wait_for_spans(3 * seeded.llm_calls)
        chat_span, root_span = {}, {}
        for turn in seeded.turns:
            spans = api(server, f"/api/v1/traces/{turn.trace_id}")["spans"]
            chat_span[turn.trace_id] = next(s["span_id"] for s in spans if s["name"].startswith("chat "))
            root_span[turn.trace_id] = next(s["span_id"] for s in spans if not s["parent_span_id"])
        scored_turns, unscored = seeded.turns[:-1], seeded.turns[-1]
        helpfulness = {t.trace_id: round((i % 5) / 4, 2) for i, t in enumerate(scored_turns)}
        thumbs = {t.trace_id: ("up" if i % 3 else "down") for i, t in enumerate(scored_turns[:6])}
        records = [("helpfulness", v, t, chat_span[t], None, f"judge says {v}") for t, v in helpfulness.items()]
        records += [("thumbs", 1.0 if label == "up" else 0.0, t, root_span[t], label, None) for t, label in thumbs.items()]
        subprocess.run([sys.executable, "-c", EVALUATOR, server.url, json.dumps(records)], check=True, timeout=60)
        deadline = time.monotonic() + 30
        while len(api(server, "/api/v1/scores", start="-24h", limit=1000)["items"]) < len(records):
            assert time.monotonic() < deadline, "the evaluator's scores did not arrive"
            time.sleep(0.3)
        yield Scored(server, seeded, helpfulness, thumbs, chat_span, unscored)
    finally:
        server.terminate()


def test_trace_view_shows_the_trace_scores_and_the_span_ones(page, scored: Scored) -> None:
    trace_id = next(t for t in scored.thumbs)  # scored twice: helpfulness on the chat span, thumbs on the root
    open_page(page, scored.server, f"/traces/{trace_id}?range=24h")
    rows = page.locator("[data-testid='trace-scores-table'] tbody tr")
    assert sorted(r.get_attribute("data-score") for r in rows.all()) == ["helpfulness", "thumbs"]
    value = page.locator("tr[data-score='helpfulness'] .score-value").get_attribute("data-value")
    assert float(value) == scored.helpfulness[trace_id]
    assert scored.thumbs[trace_id] in page.locator("tr[data-score='thumbs'] td[data-col='value']").inner_text()
    # the root span is selected first: its details list the thumbs score only
    assert page.locator("[data-testid='span-scores'] li").all_inner_texts() == [
        f"thumbs: {1 if scored.thumbs[trace_id] == 'up' else 0} ({scored.thumbs[trace_id]})"]
    page.locator("tr[data-score='helpfulness'] button[data-score-span]").click()
    assert page.locator(f"#waterfall [data-span-id='{scored.chat_span[trace_id]}']").get_attribute("aria-pressed") == "true"
    item = page.locator("[data-testid='span-scores'] li[data-score='helpfulness']").inner_text()
    assert item.startswith("helpfulness: ") and f"judge says {scored.helpfulness[trace_id]}" in item


def test_a_trace_without_scores_says_how_to_record_them(page, scored: Scored) -> None:
    open_page(page, scored.server, f"/traces/{scored.unscored.trace_id}")
    assert "llmlens.score" in page.locator("[data-testid='no-scores']").inner_text()
    assert page.locator("[data-testid='span-scores']").count() == 0


def test_overview_links_each_score_to_the_quality_view(page, scored: Scored) -> None:
    open_page(page, scored.server, "/?range=24h")
    page.wait_for_selector("#quality-summary[data-loaded]")
    names = {r.get_attribute("data-name"): r for r in page.locator("[data-testid='quality-summary-table'] tbody tr").all()}
    assert set(names) == {"helpfulness", "thumbs"}
    assert names["helpfulness"].locator("td[data-col='count']").inner_text() == str(len(scored.helpfulness))
    names["thumbs"].locator("a").click()
    page.wait_for_url("**/quality?*")
    page.wait_for_selector("body[data-ready]")
    assert parse_qs(urlparse(page.url).query)["name"] == ["thumbs"]
    assert page.locator("#page-title").inner_text() == "Quality: thumbs"
    assert column(page, "quality-labels-table", "label") == ["up", "down"]


def test_quality_page_equals_the_api(page, scored: Scored) -> None:
    server = scored.server
    open_page(page, server, "/quality?range=24h")
    data = api(server, "/api/v1/quality", start="-24h")
    assert data["name"] == "helpfulness"  # the most recorded is shown first
    values = list(scored.helpfulness.values())
    assert tile(page, "count")[0] == len(values) == sum(g["count"] for g in data["groups"])
    assert tile(page, "mean")[0] == pytest.approx(sum(values) / len(values))
    assert (tile(page, "min")[0], tile(page, "max")[0]) == (min(values), max(values))
    shown = {(r.get_attribute("data-model"), r.get_attribute("data-app")): int(r.get_attribute("data-count"))
             for r in page.locator("[data-testid='quality-groups-table'] tbody tr").all()}
    assert shown == {(g["model"], g["app"]): g["count"] for g in data["groups"]}
    # each score's model is its chat span's: the seeded turns' models
    by_model: dict[str, int] = {}
    for turn in scored.seeded.turns:
        if turn.trace_id in scored.helpfulness:
            by_model[turn.model] = by_model.get(turn.model, 0) + 1
    assert {m: sum(c for (mm, _), c in shown.items() if mm == m) for m in by_model} == by_model
    for chart in ("series", "distribution"):
        assert page.locator(f"#chart-{chart}").get_attribute("role") == "img"
    assert all(m in page.locator("#chart-series").get_attribute("aria-label") for m in by_model)

    after_render(page, lambda: page.select_option("#f-group_by", "app"))
    label = page.locator("#chart-series").get_attribute("aria-label")
    assert "support" in label and "search" in label and "gpt-4o" not in label

    model = next(iter(by_model))
    after_render(page, lambda: page.select_option("#f-model", model))
    assert {r.get_attribute("data-model") for r in page.locator("[data-testid='quality-groups-table'] tbody tr").all()} == {model}
    assert tile(page, "count")[0] == by_model[model]
    assert parse_qs(urlparse(page.url).query)["model"] == [model]


def test_quality_page_with_no_scores_in_range(page, scored: Scored) -> None:
    open_page(page, scored.server, "/quality?range=custom&start=2001-01-01T00:00:00Z&end=2001-01-02T00:00:00Z")
    assert "No quality scores" in page.locator("[data-testid='empty']").inner_text()
    assert httpx.get(scored.server.url + "/quality", timeout=10).status_code == 200
