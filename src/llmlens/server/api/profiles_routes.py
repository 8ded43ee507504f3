"""Flame graphs of stored profiles: per service and time range, per span (by id or name), trace or
thread, and the diff of two time ranges or two span names (the Profiles page reads these)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from llmlens.server.errors import BadParameter
from llmlens.server.query import profiles as profiles_query
from llmlens.server.query.window import EARLIEST, Window, parse_window

router = APIRouter(tags=["profiles"])

Start = Annotated[str | None, Query(description="RFC 3339 time or relative like -1h; default -1h", max_length=64)]
End = Annotated[str | None, Query(description="RFC 3339 time or relative like -5m; default now", max_length=64)]
Service = Annotated[str | None, Query(description="the service whose samples to read (default: every service's)",
                                       max_length=1024)]
ProfileType = Annotated[str, Query(description="process_cpu (CPU samples), wall, memory, ...", max_length=128)]
SpanName = Annotated[str | None, Query(description="only samples inside spans of this name (and the spans "
                                                    "below them)", max_length=1024)]
TraceId = Annotated[str | None, Query(description="only samples of this trace (32 hex)", max_length=64)]
SpanId = Annotated[str | None, Query(description="only samples inside this span and the spans below it (16 hex)",
                                     max_length=32)]
Thread = Annotated[str | None, Query(description="only samples of this thread name", max_length=1024)]
MaxNodes = Annotated[int, Query(ge=1, le=profiles_query.MAX_NODES,
                                description="at most this many nodes; the lightest are left out")]


def _selection(service: str | None, window: Window, profile_type: str, span_name: str | None, trace_id: str | None,
               span_id: str | None, thread: str | None) -> profiles_query.Selection:
    return profiles_query.Selection(
        service=service or None, window=window, profile_type=profile_type or "process_cpu", span_name=span_name or None,
        trace_id=profiles_query.hex_id(trace_id, 32, "trace_id"),
        span_id=profiles_query.hex_id(span_id, 16, "span_id"), thread=thread or None)


@router.get("/api/v1/profiles/services")
async def profile_services(request: Request, start: Start = None, end: End = None) -> Any:
    """Services that sent profiles in the time range, per profile type, with their sample totals."""
    window = parse_window(start, end, default="-1h")
    return {"services": await profiles_query.services(request.app.state.store, window)}


@router.get("/api/v1/profiles/flamegraph")
async def flamegraph(request: Request, service: Service = None, start: Start = None, end: End = None,
                     profile_type: ProfileType = "process_cpu", span_name: SpanName = None,
                     trace_id: TraceId = None, span_id: SpanId = None, thread: Thread = None,
                     max_nodes: MaxNodes = profiles_query.DEFAULT_MAX_NODES) -> Any:
    """`{"name": "total", "value": N, "children": [{"name": "function (file:line)", "value": total,
    "self": own, "children": [...]}]}`, heaviest child first. Values are samples for CPU profiles."""
    window = parse_window(start, end, default="-1h")
    selection = _selection(service, window, profile_type, span_name, trace_id, span_id, thread)
    return JSONResponse(await profiles_query.flamegraph(request.app.state.store, selection, max_nodes))


@router.get("/api/v1/profiles/diff")
async def diff(
    request: Request, service: Service = None,
    baseline_start: Annotated[str | None, Query(description="the baseline range's start (default: start)",
                                                max_length=64)] = None,
    baseline_end: Annotated[str | None, Query(description="the baseline range's end (default: end)",
                                              max_length=64)] = None,
    comparison_start: Annotated[str | None, Query(description="the comparison range's start (default: start)",
                                                  max_length=64)] = None,
    comparison_end: Annotated[str | None, Query(description="the comparison range's end (default: end)",
                                                max_length=64)] = None,
    baseline_span_name: SpanName = None, comparison_span_name: SpanName = None,
    start: Start = None, end: End = None, profile_type: ProfileType = "process_cpu", thread: Thread = None,
    max_nodes: MaxNodes = profiles_query.DEFAULT_MAX_NODES,
) -> Any:
    """Two selections of one service's samples in one tree: baseline and comparison time ranges, or
    two span names over one range (`start`, `end`); with none of these, the range (`start`, `end`)
    against the one of the same length before it. Each node has `baseline`, `comparison` (totals),
    `baseline_self`, `comparison_self`, and `value` (their sum)."""
    comp_window = _window("comparison", start, end, comparison_start, comparison_end)
    if baseline_start or baseline_end or comparison_start or comparison_end or baseline_span_name \
            or comparison_span_name:
        base_window = _window("baseline", start, end, baseline_start, baseline_end)
    else:  # the period before
        base_window = Window(max(EARLIEST, comp_window.start - (comp_window.end - comp_window.start)), comp_window.start)
    baseline = _selection(service, base_window, profile_type, baseline_span_name, None, None, thread)
    comparison = _selection(service, comp_window, profile_type, comparison_span_name, None, None, thread)
    return JSONResponse(await profiles_query.diff(request.app.state.store, baseline, comparison, max_nodes))


def _window(side: str, start: str | None, end: str | None, side_start: str | None, side_end: str | None) -> Window:
    """One side's range: its own start/end, else the request's; an error names the parameter given."""
    try:
        return parse_window(side_start or start, side_end or end, default="-1h")
    except BadParameter as exc:
        name = exc.parameter or "start"
        if (side_start if name == "start" else side_end) is not None:
            raise BadParameter(f"{side}_{name}", f"{side}_{name}: {exc}") from None
        raise
