"""The pages run under a strict Content-Security-Policy, and the page fixture's watch for violations
(which every browser test ends with) really sees one when something breaks the policy."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_pages_are_served_with_a_strict_csp(page, seeded_server) -> None:
    server, _ = seeded_server
    response = page.goto(server.url + "/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    page.wait_for_selector("body[data-ready='ok']")
    # Dynamic widths and colours are set through CSSOM, which the policy allows: the bars have them.
    assert page.locator("[data-testid='models'] .fill").first.evaluate("el => el.style.width").endswith("%")


def test_the_violation_watch_sees_a_blocked_inline_style_and_script(page, seeded_server, csp_violations) -> None:
    server, _ = seeded_server
    page.goto(server.url + "/costs")
    page.wait_for_selector("body[data-ready]")
    with page.expect_console_message(lambda m: m.text.startswith("CSP violation")):
        page.evaluate("() => document.querySelector('h1').setAttribute('style', 'color: rgb(255, 0, 0)')")
    with page.expect_console_message(lambda m: "script-src" in m.text):
        page.evaluate("""() => { const s = document.createElement('script');
                                 s.textContent = 'window.injected = true'; document.body.append(s); }""")
    assert page.evaluate("() => getComputedStyle(document.querySelector('h1')).color") != "rgb(255, 0, 0)"
    assert page.evaluate("() => window.injected") is None
    assert any("style-src" in v for v in csp_violations) and any("script-src" in v for v in csp_violations)
    csp_violations.clear()  # provoked on purpose: the fixture's own check would fail the test


def test_the_api_reference_loads_nothing_from_elsewhere(page, seeded_server) -> None:
    server, _ = seeded_server
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(server.url + "/docs")
    page.wait_for_load_state("load")
    assert page.locator("[data-testid='operation']").count() >= 10
    assert page.locator("#get-api-v1-traces").count() == 1
    page.click("a[href='#get-api-v1-traces']")
    assert page.url.endswith("#get-api-v1-traces")
    assert requested and all(url.startswith(server.url) or url.startswith("data:") for url in requested), requested
