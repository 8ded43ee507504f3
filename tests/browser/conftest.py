"""Browser-test fixtures: one seeded `llmlens serve` process and Debian's Chromium via Playwright."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.seed import Seeded, build, post
from tests.server_process import ServerProcess

CHROMIUM = os.environ.get("LLMLENS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="package")
def seeded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Seeded]]:
    """A real server holding known traffic: 6 sessions x 3 turns over the last 30 minutes."""
    server = ServerProcess(tmp_path_factory.mktemp("ui-store") / "data").start()
    try:
        seeded = build(sessions=6, turns_per_session=3, span_minutes=30)
        post(server.url, seeded)
        server.wait_for_spans(3 * seeded.llm_calls)
        yield server, seeded
    finally:
        if server.proc and server.proc.poll() is None:
            server.terminate()


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    # Chromium missing is a broken environment, not a reason to skip: fail loudly.
    assert Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


# Every page reports what its Content-Security-Policy blocked on the console, which the fixture
# watches across navigations (Playwright's own init scripts are exempt from the policy).
REPORT_CSP_VIOLATIONS = """
document.addEventListener('securitypolicyviolation', (e) => console.error(
  `CSP violation: ${e.effectiveDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`));
"""


@pytest.fixture
def csp_violations() -> list[str]:
    """What the page fixture's Content-Security-Policy blocked; the fixture fails the test on any."""
    return []


@pytest.fixture
def page(browser, csp_violations: list[str]) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: csp_violations.append(msg.text) if msg.text.startswith("CSP violation") else None)
    page.set_default_timeout(20_000)
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not csp_violations, f"the page did something its Content-Security-Policy forbids: {csp_violations}"
