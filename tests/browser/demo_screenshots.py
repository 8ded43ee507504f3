"""Regenerate docs/screenshots/demo/*.png from a real `llmlens demo` run, as a new user sees it.

    python -m tests.browser.demo_screenshots [--minutes 4]

Starts the demo on free ports in a temporary folder, lets its traffic run, photographs the overview,
the costs and sessions pages and one trace in Chromium at 1280 px, then stops the demo with Ctrl-C's
signal.
Not a test (nothing is asserted); it uses the browser tests' Chromium setup.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "demo"
STARTUP_TIMEOUT_S = 180.0


def start_demo(data_dir: Path, minutes: float) -> tuple[subprocess.Popen, dict[str, str]]:
    argv = [sys.executable, "-m", "llmlens.demo", "--ports", "auto", "--data-dir", str(data_dir),
            "--seed", "7", "--duration", str(minutes * 60 + 120)]  # fmt: skip
    log = open(data_dir.parent / "demo.out", "w")  # noqa: SIM115 -- open for the demo's life
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    state_file = data_dir / "demo.json"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not state_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"the demo did not start:\n{(data_dir.parent / 'demo.out').read_text()}")
        time.sleep(0.5)
    return proc, json.loads(state_file.read_text())


def a_complete_trace(server: str) -> str:
    """A recent successful trace through every demo service, streamed and priced (the richest view)."""
    items = httpx.get(f"{server}/api/v1/traces", params={"service": "demo-chatbot", "status": "ok", "limit": 100},
                      timeout=30).json()["items"]
    for item in items:
        if item["root_name"] == "POST /api/chat" and item["cost_usd"] and item["span_count"] >= 15:
            return item["trace_id"]
    return items[0]["trace_id"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.browser.demo_screenshots", description=__doc__)
    parser.add_argument("--minutes", type=float, default=4.0, help="traffic before the photos (default 4)")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llmlens-demo-shots-") as tmp:
        demo, state = start_demo(Path(tmp) / "demo", args.minutes)
        try:
            time.sleep(args.minutes * 60)
            server = state["server"]
            pages = {  # each page on the range it opens with (picked from the data), as a user sees it
                "overview": "/",
                "costs": "/costs",
                "sessions": "/sessions",
                "trace": f"/traces/{a_complete_trace(server)}",
            }
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                for name, path in pages.items():
                    page.goto(server + path)
                    page.wait_for_selector("body[data-ready='ok']")
                    page.wait_for_load_state("networkidle")  # panels that load after the page's own data
                    page.screenshot(path=str(OUT / f"{name}.png"), full_page=name not in ("trace", "sessions"))
                    print(f"wrote {OUT / f'{name}.png'}")
                browser.close()
        finally:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(90)
            except subprocess.TimeoutExpired:
                demo.kill()


if __name__ == "__main__":
    main()
