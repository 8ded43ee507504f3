"""Run the app under uvicorn until SIGTERM/SIGINT, then drain and exit cleanly."""

from __future__ import annotations

from types import FrameType

import uvicorn
from fastapi import FastAPI

from llmlens.server.settings import ServerSettings


class DrainingServer(uvicorn.Server):
    """uvicorn's server, except that a signal which ended in a clean drain exits 0.

    uvicorn re-raises the signal after shutting down (exit status -15); for llmlens a
    drained shutdown (every accepted export committed) is success, and supervisors should
    see it as such.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def run_server(app: FastAPI, settings: ServerSettings) -> None:
    config = uvicorn.Config(app, host=settings.host, port=settings.http_port, loop="asyncio",
                            log_level=settings.log_level, access_log=settings.log_level == "debug",
                            timeout_graceful_shutdown=30, server_header=False)
    DrainingServer(config).run()
