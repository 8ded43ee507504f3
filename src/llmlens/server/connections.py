"""What uvicorn's HTTP protocol lacks against clients that hold connections open: a time limit
and a size limit on a request's head (its request line and headers).

uvicorn times out only idle keep-alive connections; a client that opens a connection and sends
its headers a byte at a time (slowloris) holds it for as long as it likes, before any API key is
checked, and httptools accepts headers of any size. Bodies have their own time limit where they
are read (receive/http_body.py); the number of connections is capped by uvicorn's
`limit_concurrency` (run.py).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_TIMEOUT_S = 10.0  # from the connection (or the end of the previous request) to the end of the headers
MAX_HEAD_BYTES = 64 * 1024


class HeadTooLarge(Exception):
    """Raised in a parser callback: uvicorn then answers 400 and closes the connection."""


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request head takes longer than
    HEAD_TIMEOUT_S and refusing one whose head is larger than MAX_HEAD_BYTES."""

    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        if self._head_timer is None:  # a later request on a kept-alive connection
            self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        super().on_headers_complete()

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge(f"request line and headers are over {MAX_HEAD_BYTES} bytes")

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()
