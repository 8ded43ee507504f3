"""GET /metrics and /metrics/otlp for Prometheus: thin routes over the app's ServerMetrics (behind the
API key like every path but the health probes, login and static assets)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Span-derived metrics (GenAI, llm_*, RED, service graph) and the server's own, in the Prometheus
    text format, or OpenMetrics with exemplars when the scraper accepts it."""
    body, content_type = await asyncio.to_thread(request.app.state.metrics.exposition, request.headers.get("accept"))
    return Response(body, media_type=content_type)


@router.get("/metrics/otlp")
async def otlp_metrics(request: Request) -> Response:
    """The OTLP metrics apps sent, translated as the OpenTelemetry Collector's Prometheus exporter does."""
    body, content_type = await asyncio.to_thread(request.app.state.metrics.otlp_exposition,
                                                 request.headers.get("accept"))
    return Response(body, media_type=content_type)
