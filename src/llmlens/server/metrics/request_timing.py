"""Time each HTTP request the server answers, by route (the route's path template, so ids in paths
never become label values): llmlens_query_duration_seconds. OTLP exports are timed where they are
answered (llmlens_ingest_duration_seconds) and static files not at all."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Receive, Scope, Send

from llmlens.server.metrics import families as f
from llmlens.server.metrics.registry import Registry

_UNTIMED_PREFIXES = ("/v1/", "/static/")
UNMATCHED = "unmatched"  # a request no route answered (a 404): one label value for all of them


class RequestTiming:
    def __init__(self, app: ASGIApp, registry: Registry) -> None:
        self.app = app
        self._registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_UNTIMED_PREFIXES):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self._registry.observe(f.QUERY_SECONDS, (route,), time.perf_counter() - started)
