"""A browser against a server with an API key: redirected to the login page, logged in by a session
cookie the page's scripts cannot read, using every page, then logged out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from llmlens.server.api.auth import SESSION_COOKIE
from tests.browser.seed import Seeded, build
from tests.server_process import ServerProcess

pytestmark = pytest.mark.browser
API_KEY = "browser-test-api-key-0123456789"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Seeded]]:
    server = ServerProcess(tmp_path_factory.mktemp("ui-keyed") / "data", env={"LLMLENS_API_KEY": API_KEY}).start()
    try:
        seeded = build(sessions=2, turns_per_session=3, span_minutes=20, seed=11)
        bearer = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
        for path, body in (("/v1/traces", seeded.traces_body), ("/v1/logs", seeded.logs_body)):
            httpx.post(server.url + path, content=json.dumps(body), headers=bearer, timeout=60).raise_for_status()
        yield server, seeded
    finally:
        server.kill()


def test_login_use_every_page_and_logout(page, keyed_server) -> None:
    server, seeded = keyed_server
    context = page.context

    page.goto(server.url + "/traces?range=6h")
    page.wait_for_url("**/login?**")
    assert parse_qs(urlparse(page.url).query)["next"] == ["/traces?range=6h"]
    assert page.locator("nav[aria-label='Main']").count() == 0  # nothing to navigate to yet
    assert page.locator("#key").get_attribute("type") == "password"

    page.fill("#key", "not-the-key-0123456789")
    page.click("#login")
    page.wait_for_selector("[data-testid='error']")
    assert "not this server's API key" in page.locator("[data-testid='error']").inner_text()
    assert context.cookies() == []

    page.fill("#key", API_KEY)
    page.click("#login")
    page.wait_for_url("**/traces?range=6h")
    page.wait_for_selector("body[data-ready='ok']")
    rows = page.locator("[data-testid='traces-table'] tbody tr")
    assert rows.count() == seeded.llm_calls  # the page's API calls carried the cookie

    (cookie,) = context.cookies()
    assert cookie["name"] == SESSION_COOKIE
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax" and cookie["secure"] is False
    assert API_KEY not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # no script on the page can read it

    for path, ready in (("/", "ok"), ("/sessions", "ok"), ("/logs", "ok"), ("/costs", "ok"),
                        (f"/traces/{seeded.turns[0].trace_id}", "ok")):
        page.goto(server.url + path)
        page.wait_for_selector("body[data-ready]")
        assert page.evaluate("document.body.dataset.ready") == ready, path
    page.goto(server.url + "/docs")
    assert page.locator("[data-testid='operation']").count() > 10

    page.click("#logout")
    page.wait_for_url("**/login")
    assert context.cookies() == []
    page.goto(server.url + "/costs")
    page.wait_for_url("**/login?next=%2Fcosts")
