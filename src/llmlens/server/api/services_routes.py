"""The service graph and RED metrics of stored spans, for any time range (the Services page reads both)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from llmlens.server.query import red as red_query
from llmlens.server.query import service_graph as graph_query
from llmlens.server.query.window import parse_window

router = APIRouter(tags=["services"])

Start = Annotated[str | None, Query(description="RFC 3339 time or relative like -1h; default -1h", max_length=64)]
End = Annotated[str | None, Query(description="RFC 3339 time or relative like -5m; default now", max_length=64)]
Service = Annotated[str | None, Query(description="only what this service calls or is called by", max_length=1024)]


@router.get("/api/v1/service-graph")
async def service_graph(request: Request, start: Start = None, end: End = None, service: Service = None) -> Any:
    """Services and what they call: instrumented services, and virtual nodes (LLM providers,
    databases, vector stores, callers outside the traces) for peers that sent no spans.

    Each edge is one client -> server pair: requests, errors (either side failed), error rate and
    the server side's p50/p95 duration (the client's, for a virtual server)."""
    window = parse_window(start, end, default="-1h")
    return await graph_query.service_graph(request.app.state.store, window, service=service or None)


@router.get("/api/v1/red")
async def red(
    request: Request,
    start: Start = None,
    end: End = None,
    service: Annotated[str | None, Query(max_length=1024)] = None,
    span_name: Annotated[str | None, Query(max_length=1024)] = None,
    kind: Annotated[list[str] | None, Query(description="span kinds: server, client, internal, producer, "
                                                         "consumer, unspecified; repeatable; default all",
                                            max_length=6)] = None,
    limit: Annotated[int, Query(ge=1, le=red_query.MAX_ROWS)] = 500,
) -> Any:
    """Rate (per second over the window), error rate and p50/p90/p99 duration per service, span
    name and span kind, busiest first."""
    window = parse_window(start, end, default="-1h")
    return await red_query.red_metrics(request.app.state.store, window, service=service or None,
                                       span_name=span_name or None, kinds=red_query.parse_kinds(kind), limit=limit)
