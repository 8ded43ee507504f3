"""Numbers as people read them, in a real headless Chromium on the seeded server: small costs in plain
decimals (never `$4e-8`), and the overview's duration histogram with axis labels that do not overlap
at any page width.
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser

EXPONENT_DOLLARS = re.compile(r"\$-?\d+(\.\d+)?e[-+]?\d+", re.IGNORECASE)


def test_small_costs_are_plain_decimals(page, seeded_server) -> None:
    server, _ = seeded_server
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready]")
    shown = page.evaluate("""async () => {
      const f = await import('/static/js/lib/format.js');
      return [4e-8, 6.87e-5, 0.5, 0.123456, 1234.5, 0, -3e-7, 1e-12, null].map((v) => f.usd(v));
    }""")
    assert shown == ["$0.00000004", "$0.0000687", "$0.5", "$0.123", "$1,234.50", "$0.00", "-$0.0000003",
                     "<$0.000000001", "—"]
    for path in ["/", "/traces", "/sessions", "/costs"]:
        page.goto(server.url + path)
        page.wait_for_selector("body[data-ready='ok']")
        text = page.inner_text("main")
        assert "$" in text, path
        assert not EXPONENT_DOLLARS.search(text), (path, EXPONENT_DOLLARS.search(text).group(0))


# The label extents as drawn: centred on their bars, measured in the axis font by the browser.
OVERLAPS = """(el) => {
  const labels = JSON.parse(el.dataset.axisLabels);
  const width = el.querySelector('.u-over').getBoundingClientRect().width;
  const ctx = document.createElement('canvas').getContext('2d');
  ctx.font = '12px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif';
  const slot = width / labels.length;
  const spans = labels.map((l, i) => [l, (i + 0.5) * slot, ctx.measureText(l).width]).filter(([l]) => l);
  const overlaps = [];
  for (let i = 1; i < spans.length; i++) {
    const [a, ca, wa] = spans[i - 1];
    const [b, cb, wb] = spans[i];
    if (ca + wa / 2 > cb - wb / 2) overlaps.push(`${a} / ${b}`);
  }
  return { shown: spans.length, total: labels.length, overlaps };
}"""


@pytest.mark.parametrize("width", [1400, 900, 420])
def test_histogram_labels_do_not_overlap(browser, seeded_server, width: int) -> None:
    server, _ = seeded_server
    context = browser.new_context(viewport={"width": width, "height": 900})
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        page.wait_for_selector("body[data-ready='ok']")
        page.wait_for_selector("#chart-histogram[data-axis-labels]")
        result = page.eval_on_selector("#chart-histogram", OVERLAPS)
        assert result["total"] == 11
        assert result["overlaps"] == [], result
        assert result["shown"] >= 3, result  # thinned, not emptied
        if width <= 420:
            assert result["shown"] < result["total"], result
    finally:
        context.close()
