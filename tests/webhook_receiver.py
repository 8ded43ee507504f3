"""A tiny real HTTP server on a loopback port that records what alert receivers are sent."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    """Records every POST (path, headers, raw body, JSON); answers `fail_next` requests with 503 first."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.fail_next = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 -- http.server's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    failing = receiver.fail_next > 0
                    receiver.fail_next -= 1 if failing else 0
                    if not failing:
                        receiver.received.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                                  "json": json.loads(body or b"null"), "at": time.time()})
                self.send_response(503 if failing else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def messages(self, path: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.received if path is None or m["path"] == path]

    def wait_for(self, check: Callable[[list[dict[str, Any]]], bool], timeout: float = 30.0,
                 path: str | None = None) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages(path)
            if check(found):
                return found
            time.sleep(0.05)
        raise AssertionError(f"the receiver did not get what was expected in {timeout} s; it got: "
                             f"{[m['json'] for m in self.messages(path)]}")
