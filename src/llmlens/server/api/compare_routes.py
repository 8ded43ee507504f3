"""Comparing two traces, and finding a typical trace of a root span to compare one with.

Included before the core routes: `/api/v1/traces/compare` and `/api/v1/traces/typical` would
otherwise be read as `/api/v1/traces/{trace_id}`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from llmlens.server.api.errors import error_response
from llmlens.server.errors import BadParameter
from llmlens.server.query import compare as compare_query
from llmlens.server.query.traces import normalise_trace_id
from llmlens.server.query.window import parse_window

router = APIRouter(tags=["traces"])

TraceIdParam = Annotated[str, Query(description="a trace id: 32 hex characters", max_length=64)]


def _trace_id(value: str, parameter: str) -> str:
    try:
        return normalise_trace_id(value)
    except BadParameter:
        raise BadParameter(parameter, f"{parameter} must be a trace id of 32 hex characters, "
                                      f"got {value[:40]!r}") from None


@router.get("/api/v1/traces/compare")
async def compare_traces(request: Request, a: TraceIdParam, b: TraceIdParam) -> Any:
    """Two traces side by side: their span trees aligned by service, span name and position among
    siblings, each pair's latency, tokens and cost with the difference (b minus a), spans only in one
    of them marked, and for LLM calls the model, parameters, prompt and response with a line diff."""
    trace_a, trace_b = _trace_id(a, "a"), _trace_id(b, "b")
    try:
        return await compare_query.compare_traces(request.app.state.store, trace_a, trace_b)
    except compare_query.TraceNotFound as missing:
        return error_response(404, "not_found", str(missing), missing.side)


@router.get("/api/v1/traces/typical")
async def typical_trace(
    request: Request,
    service: Annotated[str, Query(description="the root span's service", min_length=1, max_length=1024)],
    name: Annotated[str, Query(description="the root span's name", min_length=1, max_length=1024)],
    start: Annotated[str | None, Query(description="RFC 3339 or relative like -24h; default -24h",
                                       max_length=64)] = None,
    end: Annotated[str | None, Query(description="RFC 3339 or relative; default now", max_length=64)] = None,
    exclude: Annotated[str | None, Query(description="a trace id not to pick (the one being compared)",
                                         max_length=64)] = None,
) -> Any:
    """The trace whose root is this service and span name with the median duration of such traces in
    the time range (the lower middle of an even count; with `exclude`, the one nearest the median):
    the one to compare an unusual trace with."""
    window = parse_window(start, end, default="-24h")
    excluded = _trace_id(exclude, "exclude") if exclude else None
    found = await compare_query.typical_trace(request.app.state.store, window, service, name, excluded)
    if found is None:
        return error_response(404, "not_found", f"no other trace with root {service} · {name} in this time range",
                              "name")
    return found
