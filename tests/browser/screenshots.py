"""Regenerate docs/screenshots/*.png: one per page, at 1280 px, from a server holding seeded traffic.

    python -m tests.browser.screenshots

Not a test (nothing is asserted); it uses the same seed and Chromium setup as the browser tests.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import quote

import httpx
from playwright.sync_api import sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.seed import build, post
from tests.server_process import ServerProcess

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llmlens-shots-") as tmp:
        server = ServerProcess(Path(tmp) / "data").start()
        try:
            seeded = build(sessions=40, turns_per_session=4, span_minutes=170, seed=11)
            post(server.url, seeded)
            server.wait_for_spans(3 * seeded.llm_calls)
            error_trace = next(t.trace_id for t in seeded.turns if t.error)
            chat_span = next(s["span_id"] for s in httpx.get(f"{server.url}/api/v1/traces/{error_trace}").json()["spans"]
                             if s["llm"] and s["llm"]["operation"] == "chat")
            ok_session = next(t.session_id for t in seeded.turns if not t.error)
            pages = {
                "overview": "/?range=6h",
                "traces": "/traces?range=6h&q=" + quote('{ resource.service.name = "chatbot" '
                                                        "&& span.gen_ai.usage.input_tokens > 300 }"),
                "trace": f"/traces/{error_trace}?span={chat_span}",
                "sessions": "/sessions?range=6h",
                "session": f"/sessions/{ok_session}",
                "logs": "/logs?range=6h",
                "costs": "/costs?range=6h",
            }
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                for name, path in pages.items():
                    page.goto(server.url + path)
                    page.wait_for_selector("body[data-ready='ok']")
                    page.screenshot(path=str(OUT / f"{name}.png"), full_page=name not in ("traces", "logs", "sessions"))
                    print(f"wrote {OUT / f'{name}.png'}")
                browser.close()
        finally:
            server.terminate()


if __name__ == "__main__":
    main()
