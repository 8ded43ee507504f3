"""Request/latency ("RED") metrics for the demo's HTTP services, exposed on their own /metrics.

Each service owns a fresh ``CollectorRegistry`` so two apps in one process (tests) never collide
and the exposition holds only that service's series.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class HttpMetrics:
    """Counts requests by endpoint, method and status, and times them to the last body byte."""

    def __init__(self, namespace: str, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            f"{namespace}_http_requests",
            "HTTP requests served, by route template, method and status code.",
            ["endpoint", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{namespace}_http_request_duration_seconds",
            "Time from request start until the response body finished, by route template.",
            ["endpoint", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def exposition(self) -> Response:
        """The registry in Prometheus text format, for a plain ``GET /metrics`` route (a mount would redirect)."""
        return Response(content=generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class HttpMetricsMiddleware:
    """Pure ASGI middleware (not BaseHTTPMiddleware) so streamed responses are timed to their end.

    Use as ``app.add_middleware(HttpMetricsMiddleware, metrics=http_metrics)``.
    """

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client sees if the app dies before starting a response

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            endpoint = _route_template(scope)
            method = scope.get("method", "GET")
            self.metrics.requests.labels(endpoint, method, str(status)).inc()
            self.metrics.latency.labels(endpoint, method).observe(time.perf_counter() - start)


def _route_template(scope: Scope) -> str:
    # Starlette's router stores the matched route in the (shared) scope; use its template, not the
    # raw path, so label cardinality stays bounded.
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path:
        return str(path)
    raw = scope.get("path", "")
    return "/metrics" if raw.startswith("/metrics") else "unmatched"
