"""The JSON query API: thin routes over server/query. Paths and field names are a contract."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from llmlens import __version__
from llmlens.server.api.errors import error_response
from llmlens.server.errors import BadParameter
from llmlens.server.query import logs as logs_query
from llmlens.server.query import metrics as metrics_query
from llmlens.server.query import scores as scores_query
from llmlens.server.query import stats as stats_query
from llmlens.server.query import traces as traces_query
from llmlens.server.query.window import parse_duration_seconds, parse_window

router = APIRouter()

Start = Annotated[str | None, Query(description="RFC 3339 time or relative like -1h (default depends on the endpoint)",
                                    max_length=64)]
End = Annotated[str | None, Query(description="RFC 3339 time or relative like -5m; default now", max_length=64)]
Text = Annotated[str | None, Query(max_length=1024)]


@router.get("/healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"])
async def readyz(request: Request) -> JSONResponse:
    """Ready = the store is open and writable, and (embedded store) its disk is writable with free
    space above `min_free_disk_mb`; otherwise 503 with the reason."""
    store = request.app.state.store
    problem = store.backend.disk_problem()
    if problem is None and not await store.writable():
        problem = "the store is closed or cannot be read"
    if problem is None:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not ready", "reason": problem}, status_code=503)


@router.get("/api/v1/status", tags=["status"])
async def status(request: Request) -> dict[str, Any]:
    """Version, store backend, and counts of what is stored and queryable."""
    store = request.app.state.store
    counts = await store.counts()
    return {"version": __version__, "backend": store.backend_name, "schema_version": store.schema_version, **counts,
            "writer": {"pending_rows": store.writer_stats.pending_rows, "commits": store.writer_stats.commits,
                       "dedup_seconds": round(store.writer_stats.dedup_seconds, 6)}}


@router.get("/api/v1/traces", tags=["traces"])
async def list_traces(
    request: Request,
    start: Start = None,
    end: End = None,
    service: Text = None,
    name: Text = None,
    model: Text = None,
    status: Annotated[str | None, Query(pattern="^(ok|error)$")] = None,
    min_duration_ms: Annotated[float | None, Query(ge=0, le=1e12)] = None,
    max_duration_ms: Annotated[float | None, Query(ge=0, le=1e12)] = None,
    attr: Annotated[list[str] | None, Query(description="key:value, repeatable", max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    """Traces, newest first. `next_cursor` fetches the next page."""
    if cursor is not None and not cursor.strip():
        raise BadParameter("cursor", "cursor is empty: leave it out for the first page, then pass next_cursor")
    window = parse_window(start, end, default="-1h")
    attrs = []
    for item in attr or []:
        key, sep, value = item.partition(":")
        if not sep or not key or len(item) > 2048:
            raise BadParameter("attr", f"attr must be key:value, got {item[:60]!r}")
        attrs.append((key, value))
    filters = traces_query.TraceFilters(service=service, name=name, model=model, status=status,
                                        min_duration_ms=min_duration_ms, max_duration_ms=max_duration_ms, attrs=attrs)
    return await traces_query.list_traces(request.app.state.store, window, filters, limit, cursor)


@router.get("/api/v1/traces/{trace_id}", tags=["traces"])
async def get_trace(request: Request, trace_id: str) -> Any:
    """Every span of one trace, with the normalised LLM facts of LLM spans."""
    store = request.app.state.store
    trace_id = traces_query.normalise_trace_id(trace_id)
    trace, scores = await asyncio.gather(traces_query.get_trace(store, trace_id),
                                         scores_query.scores_for_trace(store, trace_id))
    if trace is None:
        return error_response(404, "not_found", f"no trace {trace_id} (it may not have arrived yet)", "trace_id")
    trace["scores"] = scores
    return trace


@router.get("/api/v1/llm/stats", tags=["llm"])
async def llm_stats(
    request: Request,
    start: Start = None,
    end: End = None,
    group_by: Annotated[list[str] | None, Query(description="model, provider, service, app, department, user, "
                                                             "session, operation; repeatable or comma-separated",
                                                 max_length=8)] = None,
    step: Annotated[str | None, Query(description="bucket size, e.g. 1m, 5m, 1h", max_length=16)] = None,
    service: Text = None,
    app: Text = None,
    department: Text = None,
    model: Text = None,
    provider: Text = None,
    operation: Text = None,
    user: Text = None,
    session: Text = None,
) -> dict[str, Any]:
    """Requests, errors, latency and TTFT percentiles, tokens and cost, per group (and per bucket)."""
    window = parse_window(start, end, default="-1h")
    step_seconds = parse_duration_seconds(step, "step") if step else None
    filters = {k: v for k, v in {"service": service, "app": app, "department": department, "model": model,
                                 "provider": provider, "operation": operation, "user": user,
                                 "session": session}.items() if v}
    keys = [key.strip() for item in group_by or [] for key in item.split(",") if key.strip()]
    return await stats_query.llm_stats(request.app.state.store, window, keys, step_seconds, filters)


@router.get("/api/v1/logs", tags=["logs"])
async def search_logs(
    request: Request,
    start: Start = None,
    end: End = None,
    service: Text = None,
    severity: Annotated[str | None, Query(description="minimum: trace, debug, info, warn, error, fatal",
                                          max_length=16)] = None,
    q: Text = None,
    trace_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page", max_length=512)] = None,
) -> dict[str, Any]:
    """Log records, newest first, a page at a time (`next_cursor`). With a trace_id and no start,
    searches the whole retention."""
    tid = traces_query.normalise_trace_id(trace_id) if trace_id else None
    window = parse_window(start, end, default="-30d" if tid else "-1h")
    return await logs_query.search_logs(request.app.state.store, window, service=service, severity=severity, text=q,
                                        trace_id=tid, limit=limit, cursor=cursor or None)


@router.get("/api/v1/scores", tags=["llm"])
async def list_scores(
    request: Request,
    start: Start = None,
    end: End = None,
    trace_id: Annotated[str | None, Query(max_length=64)] = None,
    name: Text = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Quality scores and feedback (llmlens.score(), gen_ai.evaluation.result events)."""
    tid = traces_query.normalise_trace_id(trace_id) if trace_id else None
    window = parse_window(start, end, default="-30d" if tid else "-24h")
    return await scores_query.list_scores(request.app.state.store, window, trace_id=tid, name=name, limit=limit)


@router.get("/api/v1/metrics", tags=["metrics"])
async def list_metrics(request: Request, start: Start = None, end: End = None) -> dict[str, Any]:
    """Stored OTLP metrics: name, type, unit."""
    return await metrics_query.list_metrics(request.app.state.store, parse_window(start, end, default="-24h"))


@router.get("/api/v1/metrics/{name}/series", tags=["metrics"])
async def metric_series(
    request: Request,
    name: str,
    start: Start = None,
    end: End = None,
    service: Text = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> Any:
    """Points of one metric over time, one series per service and attribute set."""
    if len(name) > 512:
        raise BadParameter("name", "metric name is longer than 512 characters")
    window = parse_window(start, end, default="-1h")
    series = await metrics_query.metric_series(request.app.state.store, window, name, service, limit)
    if series is None:
        return error_response(404, "not_found", f"no points of metric {name!r} in this time range", "name")
    return series
