"""JSON endpoints shaped for the UI's pages: overview, costs, sessions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from llmlens.server.api.search import bad_request
from llmlens.server.query import costs as costs_query
from llmlens.server.query import overview as overview_query
from llmlens.server.query import sessions as sessions_query
from llmlens.server.query.llm_filter import LlmFilter
from llmlens.server.query.window import Window, WindowError, parse_window

router = APIRouter()

_START = Query(None, description="RFC 3339 or relative (-24h); default depends on the endpoint")
_END = Query(None, description="RFC 3339 or relative; default now")


def _window(start: str | None, end: str | None, default: str) -> Window | JSONResponse:
    try:
        return parse_window(start, end, default=default)
    except WindowError as exc:
        return bad_request("bad_parameter", str(exc), exc.parameter)


@router.get("/api/v1/overview")
async def overview(
    request: Request, start: str | None = _START, end: str | None = _END, step: str | None = None,
    service: str | None = None, app: str | None = None, department: str | None = None, model: str | None = None,
) -> Any:
    """Totals, time series and breakdowns of LLM calls for the overview dashboard."""
    window = _window(start, end, "-24h")
    if isinstance(window, JSONResponse):
        return window
    try:
        step_seconds = window.step_seconds(step)
    except WindowError as exc:
        return bad_request("bad_parameter", str(exc), exc.parameter)
    flt = LlmFilter.of(window, service=service, app=app, department=department, model=model)
    return await overview_query.overview(request.app.state.store, flt, step_seconds)


@router.get("/api/v1/costs")
async def costs(
    request: Request, start: str | None = _START, end: str | None = _END, step: str | None = None,
    group_by: str = Query("model", pattern="^(model|app|department|user|service)$"),
    service: str | None = None, app: str | None = None, department: str | None = None,
    model: str | None = None, user: str | None = None,
) -> Any:
    """Spend by one dimension, over time and in total, with unpriced calls counted."""
    window = _window(start, end, "-7d")
    if isinstance(window, JSONResponse):
        return window
    try:
        step_seconds = window.step_seconds(step)
    except WindowError as exc:
        return bad_request("bad_parameter", str(exc), exc.parameter)
    flt = LlmFilter.of(window, service=service, app=app, department=department, model=model, user=user)
    return await costs_query.costs(request.app.state.store, flt, group_by, step_seconds)


@router.get("/api/v1/sessions")
async def sessions(
    request: Request, start: str | None = _START, end: str | None = _END,
    service: str | None = None, app: str | None = None, user: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> Any:
    """Conversations grouped by session id, most recently active first."""
    window = _window(start, end, "-7d")
    if isinstance(window, JSONResponse):
        return window
    flt = LlmFilter.of(window, service=service, app=app, user=user)
    return {"items": await sessions_query.list_sessions(request.app.state.store, flt, limit)}


@router.get("/api/v1/sessions/{session_id:path}")
async def session(request: Request, session_id: str, start: str | None = _START, end: str | None = _END) -> Any:
    """One session: its summary and its traces in order."""
    window = _window(start, end, "-30d")
    if isinstance(window, JSONResponse):
        return window
    found = await sessions_query.get_session(request.app.state.store, window, session_id)
    if found is None:
        return JSONResponse({"error": {"code": "not_found", "message": f"no session {session_id!r} in this time range",
                                       "parameter": "session_id"}}, status_code=404)
    return found
