"""The Profiles page in Chromium on a real server: the flame graph drawn on a canvas from the stored
samples, click to zoom and back, search highlighting, the top-functions table, the diff view with its
legend, the trace view's "Profile of this span" opening exactly that span's samples, and a
100,000-node tree drawn by the same code."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.otlp_requests import make_span, post, trace_request
from tests.integration.profile_bodies import PprofBuilder
from tests.server_process import ServerProcess

SERVICE = "profiled-svc"
MAIN, WORK, LEAF, OTHER = ("main", "app.py", 1), ("work", "app.py", 10), ("leaf", "lib.py", 5), ("other", "app.py", 20)
TRACE, ROOT, CHILD = os.urandom(16), os.urandom(8), os.urandom(8)
# A trace across a profiled service and one that never sent a profile.
MIXED_TRACE, MIXED_ROOT, UNPROFILED_SPAN = os.urandom(16), os.urandom(8), os.urandom(8)
UNPROFILED = "unprofiled-svc"


def ingest(server: ServerProcess, body: bytes, at: int) -> None:
    answer = httpx.post(server.url + "/ingest", params={"name": f"{SERVICE}.cpu", "format": "pprof", "from": at,
                                                        "until": at + 10}, content=body, timeout=60)
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A trace (handle -> retrieve) and profiles: samples inside the trace's spans and outside, now;
    an older profile with another shape, for the diff."""
    server = ServerProcess(tmp_path_factory.mktemp("profiles-ui") / "data").start()
    try:
        start = time.time_ns() - 120 * 10**9
        spans = [make_span("handle", trace_id=TRACE, span_id=ROOT, start_ns=start, duration_ms=4000),
                 make_span("retrieve", trace_id=TRACE, span_id=CHILD, parent=ROOT, start_ns=start + 10**9,
                           duration_ms=2000)]
        assert post(server.url, "traces", trace_request(spans, service=SERVICE)).status_code == 200
        mixed = [make_span("handle", trace_id=MIXED_TRACE, span_id=MIXED_ROOT, start_ns=start, duration_ms=3000)]
        assert post(server.url, "traces", trace_request(mixed, service=SERVICE)).status_code == 200
        unprofiled = [make_span("lookup", trace_id=MIXED_TRACE, span_id=UNPROFILED_SPAN, parent=MIXED_ROOT,
                                start_ns=start + 10**9, duration_ms=1000)]
        assert post(server.url, "traces", trace_request(unprofiled, service=UNPROFILED)).status_code == 200
        now = int(time.time())
        ingest(server, PprofBuilder()
               .sample([MAIN, WORK], 30, {"span_id": ROOT.hex(), "trace_id": TRACE.hex()})
               .sample([MAIN, WORK, LEAF], 50, {"span_id": CHILD.hex(), "trace_id": TRACE.hex()})
               .sample([MAIN, OTHER], 20).bytes(), start // 10**9)
        ingest(server, PprofBuilder().sample([MAIN, OTHER], 70).sample([MAIN, WORK], 10).bytes(), now - 5400)
        answer = httpx.post(server.url + "/ingest", params={"name": f"{SERVICE}.wall", "from": now - 60},
                            content=b"main;wait_for_io 42\n", timeout=60)  # folded lines, wall clock
        assert answer.status_code == 200, answer.text
        yield server
    finally:
        if server.proc and server.proc.poll() is None:
            server.terminate()


def open_profiles(page, server: ServerProcess, query: str) -> None:
    page.goto(f"{server.url}/profiles?{query}")
    page.wait_for_function("() => document.body.dataset.ready === 'ok'")


def canvas(page) -> dict:
    return page.eval_on_selector("[data-testid=flamegraph]", "c => ({...c.dataset})")


def click_frame(page, name: str) -> None:
    """Click the middle of the frame named `name` where the canvas draws it."""
    box = page.eval_on_selector("[data-testid=flamegraph]", """(c, name) => {
        const r = c.flamegraph.rectOf(c.flamegraph.find(name));
        const b = c.getBoundingClientRect();
        return r && {x: b.left + r.x + r.width / 2, y: b.top + r.y + r.height / 2};
    }""", name)
    assert box, f"{name} is not drawn"
    page.mouse.click(box["x"], box["y"])


def test_flame_graph_drawn_zoomed_searched_with_top_functions(page, server: ServerProcess) -> None:
    open_profiles(page, server, f"service={SERVICE}&range=1h")
    drawn = canvas(page)
    assert drawn["nodes"] == "5"  # total, main, work, leaf, other
    assert int(drawn["drawn"]) == 5 and drawn["focus"] == "total"
    assert page.text_content("[data-testid=fg-summary]") == "100 samples"
    # Painted pixels, not just numbers: the canvas is not blank.
    painted = page.eval_on_selector("[data-testid=flamegraph]", """c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }""")
    assert painted > 1000

    top = page.eval_on_selector_all("[data-testid=top-functions] tbody tr", "rows => rows.map(r => [r.dataset.name, r.dataset.self])")
    assert top == [["leaf (lib.py:5)", "50"], ["work (app.py:10)", "30"], ["other (app.py:20)", "20"], ["main (app.py:1)", "0"]]

    click_frame(page, "work (app.py:10)")
    zoomed = canvas(page)
    assert zoomed["focus"] == "work (app.py:10)"
    assert int(zoomed["drawn"]) == 4  # total and main above it, work, leaf; other is out of view
    assert "zoomed to work (app.py:10)" in page.text_content("[data-testid=fg-summary]")
    click_frame(page, "main (app.py:1)")  # an ancestor: zoom out to it
    assert canvas(page)["focus"] == "main (app.py:1)"
    page.click("[data-testid=fg-reset]")
    assert canvas(page)["focus"] == "total"

    page.fill("#fg-search", "lib.py")
    assert canvas(page)["matches"] == "1"
    page.click("[data-testid=top-functions] button:text('other (app.py:20)')")
    assert canvas(page)["matches"] == "1" and page.input_value("#fg-search") == "other (app.py:20)"


def test_profile_of_this_span_from_the_trace_view(page, server: ServerProcess) -> None:
    page.goto(f"{server.url}/traces/{TRACE.hex()}?span={ROOT.hex()}")
    page.wait_for_function("() => document.body.dataset.ready === 'ok'")
    page.click("[data-testid=span-profile]")
    page.wait_for_url("**/profiles?*")
    page.wait_for_function("() => document.body.dataset.ready === 'ok'")
    assert ROOT.hex() in page.text_content("[data-testid=span-banner]")
    # The root span's own samples and its child's, not the 20 taken outside the trace.
    assert page.text_content("[data-testid=fg-summary]") == "80 samples"
    assert canvas(page)["nodes"] == "4"

    page.goto(f"{server.url}/traces/{TRACE.hex()}?span={CHILD.hex()}")
    page.wait_for_function("() => document.body.dataset.ready === 'ok'")
    page.click("[data-testid=span-profile]")
    page.wait_for_url("**/profiles?*")
    page.wait_for_function("() => document.body.dataset.ready === 'ok'")
    assert page.text_content("[data-testid=fg-summary]") == "50 samples"


def test_the_span_link_shows_only_for_services_that_sent_profiles(page, server: ServerProcess) -> None:
    asked = []
    page.on("request", lambda r: asked.append(r.url) if "/api/v1/profiles/services" in r.url else None)
    page.goto(f"{server.url}/traces/{MIXED_TRACE.hex()}?span={UNPROFILED_SPAN.hex()}")
    page.wait_for_function("() => document.body.dataset.ready === 'ok'")
    details = page.text_content("#details")
    assert UNPROFILED in details and "lookup" in details
    assert page.locator("[data-testid=span-profile]").count() == 0 and "CPU profile" not in details

    page.click(f"#waterfall [data-span-id='{MIXED_ROOT.hex()}']")
    page.wait_for_function("() => document.querySelector('#details h3')?.textContent === 'handle'")
    assert page.locator("[data-testid=span-profile]").count() == 1
    page.click(f"#waterfall [data-span-id='{UNPROFILED_SPAN.hex()}']")
    page.wait_for_function("() => document.querySelector('#details h3')?.textContent === 'lookup'")
    assert page.locator("[data-testid=span-profile]").count() == 0
    assert len(asked) == 1, asked  # one look-up for the trace view, not one per span


def test_diff_view_coloured_with_its_legend(page, server: ServerProcess) -> None:
    open_profiles(page, server, f"service={SERVICE}&range=1h&view=diff")
    assert page.is_visible("#fg-legend")
    assert "baseline 80 samples · comparison 100 samples" in page.text_content("[data-testid=fg-summary]")
    colours = page.eval_on_selector("[data-testid=flamegraph]", """c => {
        const fg = c.flamegraph, ctx = c.getContext('2d'), ratio = window.devicePixelRatio || 1;
        const at = (name) => { const r = fg.rectOf(fg.find(name));
            return Array.from(ctx.getImageData((r.x + r.width / 2) * ratio, (r.y + r.height / 2) * ratio, 1, 1).data); };
        return {work: at('work (app.py:10)'), other: at('other (app.py:20)'), leaf: at('leaf (lib.py:5)')}; }""")
    red = lambda rgba: rgba[0] > rgba[1] + 40  # noqa: E731
    green = lambda rgba: rgba[1] > rgba[0] + 40  # noqa: E731
    assert red(colours["work"]) and red(colours["leaf"])  # 10/80 of the baseline, 80/100 of the comparison
    assert green(colours["other"])  # 70/80 -> 20/100
    top = page.eval_on_selector_all("[data-testid=top-functions] tbody tr", "rows => rows.map(r => r.textContent)")
    assert top[0] == "other (app.py:20)87.5%20%−67.5%"  # the largest change first


def test_a_tree_of_100000_nodes_is_drawn_on_one_canvas(page, server: ServerProcess) -> None:
    open_profiles(page, server, f"service={SERVICE}&range=1h")
    result = page.evaluate("""async () => {
        const { FlameGraph } = await import('/static/js/lib/flamegraph.js');
        let made = 0;
        const node = (depth) => { made++; const n = { name: `fn${made} (big.py:${made})`, value: 0, self: 1, children: [] };
            if (depth < 4) for (let i = 0; i < 18; i++) n.children.push(node(depth + 1));
            n.value = n.self + n.children.reduce((s, c) => s + c.value, 0); return n; };
        const tree = { name: 'total', children: [node(0)] }; tree.value = tree.children[0].value;
        const box = document.createElement('div'); box.style.width = '1200px'; document.body.append(box);
        const t0 = performance.now();
        const fg = new FlameGraph(box); fg.setData(tree);
        const ms = performance.now() - t0;
        const drawn = Number(fg.canvas.dataset.drawn);
        const t1 = performance.now();
        fg.zoom(fg.find('fn2 (big.py:2)'));
        const zoomMs = performance.now() - t1;
        return { nodes: Number(fg.canvas.dataset.nodes), drawn, zoomed: Number(fg.canvas.dataset.drawn), ms, zoomMs,
                 elements: box.querySelectorAll('*').length };
    }""")
    assert result["nodes"] == 1 + sum(18 ** d for d in range(5))  # 111,151 frames + total
    # Frames under half a pixel are not painted: at 1200 px the two deepest levels, until zoomed.
    assert result["drawn"] == 1 + 1 + 18 + 18 ** 2
    assert result["zoomed"] == 3 + 18 + 18 ** 2  # total, fn1, fn2 full width, then fn2's subtree one level deeper
    assert result["elements"] == 2  # the canvas and the tooltip: no element per frame
    print(f"\n111k-node flame graph: flattened and drawn in {result['ms']:.0f} ms, zoom redrawn in {result['zoomMs']:.0f} ms")


def test_profile_types_of_the_service(page, server: ServerProcess) -> None:
    open_profiles(page, server, f"service={SERVICE}&range=1h")
    options = page.eval_on_selector_all("#f-type option", "os => os.map(o => [o.value, o.textContent])")
    assert options == [["process_cpu", "CPU"], ["wall", "Wall clock"]]
    page.select_option("#f-type", "wall")
    page.wait_for_function("() => document.body.dataset.ready === 'ok' && "
                           "document.querySelector('[data-testid=fg-summary]').textContent === '42 samples'")
    assert canvas(page)["nodes"] == "3"
