"""Run the app under uvicorn until SIGTERM/SIGINT, then drain and exit cleanly."""

from __future__ import annotations

from collections.abc import Callable
from types import FrameType

import uvicorn
from fastapi import FastAPI

from llmlens.server.connections import GuardedHttpProtocol
from llmlens.server.settings import ServerSettings

# Open connections (idle ones included) past which a new request gets 503: bounds the memory of
# connections, which the in-flight byte budget does not count.
MAX_CONNECTIONS = 512
KEEP_ALIVE_S = 5  # an idle kept-alive connection is closed after this
GRACEFUL_SHUTDOWN_S = 30


class DrainingServer(uvicorn.Server):
    """uvicorn's server, except that a signal which ended in a clean drain exits 0, and that the
    app hears of the signal at once (`on_signal`): uploads still arriving are answered 503 then,
    instead of holding the shutdown until they finish or uvicorn cancels them with a 500.

    uvicorn re-raises the signal after shutting down (exit status -15); for llmlens a
    drained shutdown (every accepted export committed) is success, and supervisors should
    see it as such.
    """

    def __init__(self, config: uvicorn.Config, on_signal: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_signal = on_signal

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_signal()
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def run_server(app: FastAPI, settings: ServerSettings) -> None:
    config = uvicorn.Config(app, host=settings.host, port=settings.http_port, loop="asyncio",
                            http=GuardedHttpProtocol, limit_concurrency=MAX_CONNECTIONS,
                            timeout_keep_alive=KEEP_ALIVE_S, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
                            log_level=settings.log_level, access_log=settings.log_level == "debug",
                            server_header=False)
    DrainingServer(config, on_signal=app.state.ingestor.begin_shutdown).run()
