"""The server's long-running parts as services, each with start and stop, listed in one place
(app.py's lifespan): started in order, stopped in reverse, so a part stops only after everything
that feeds it (the gRPC receiver before the ingest workers, the workers before the store)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger("llmlens.server")


@dataclass
class Service:
    """A named part with async start and stop; either may be a no-op."""

    name: str
    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]


async def _nothing() -> None:
    return None


def on_stop(name: str, stop: Callable[[], None]) -> Service:
    """A part that is already running and only needs stopping (a synchronous close)."""
    async def _stop() -> None:
        stop()

    return Service(name, _nothing, _stop)


def periodic(name: str, interval_s: float, tick: Callable[[], object]) -> Service:
    """A task that calls `tick()` (quick, synchronous) in the event loop every `interval_s` seconds."""
    task: asyncio.Task[None] | None = None

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                tick()
            except Exception:
                log.exception("%s failed", name)

    async def start() -> None:
        nonlocal task
        task = asyncio.create_task(loop(), name=name)

    async def stop() -> None:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return Service(name, start, stop)


@contextlib.asynccontextmanager
async def running(services: Sequence[Service]) -> AsyncIterator[None]:
    """Start each service in order; on exit (or a failed start) stop the started ones in reverse.
    A failing stop is logged and the others still stop."""
    started: list[Service] = []
    try:
        for service in services:
            await service.start()
            started.append(service)
        yield
    finally:
        for service in reversed(started):
            try:
                await service.stop()
            except Exception:
                log.exception("stopping %s failed", service.name)
