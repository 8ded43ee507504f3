"""JSON endpoints shaped for the UI's pages: activity (the default range), overview, costs, sessions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from llmlens.server.api.errors import error_response
from llmlens.server.query import activity as activity_query
from llmlens.server.query import costs as costs_query
from llmlens.server.query import overview as overview_query
from llmlens.server.query import sessions as sessions_query
from llmlens.server.query.llm_filter import LlmFilter
from llmlens.server.query.window import parse_window

router = APIRouter()

_START = Query(None, description="RFC 3339 or relative (-24h); default depends on the endpoint")
_END = Query(None, description="RFC 3339 or relative; default now")


@router.get("/api/v1/activity")
async def activity(request: Request) -> Any:
    """When data last arrived, the start of the newest active period (no gap over 30 minutes, within
    the last day) and the range every UI page opens on: the smallest of 15m, 1h, 6h and 24h holding that
    period; else the smallest of 7d and 30d holding the newest data; 1h for an empty store."""
    return await activity_query.activity(request.app.state.store)


@router.get("/api/v1/overview")
async def overview(
    request: Request, start: str | None = _START, end: str | None = _END, step: str | None = None,
    service: str | None = None, app: str | None = None, department: str | None = None, model: str | None = None,
) -> Any:
    """Totals, time series and breakdowns of LLM calls for the overview dashboard."""
    window = parse_window(start, end, default="-24h")  # a bad time is a 400 from the app's error handler
    step_seconds = window.step_seconds(step)
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
    window = parse_window(start, end, default="-7d")
    step_seconds = window.step_seconds(step)
    flt = LlmFilter.of(window, service=service, app=app, department=department, model=model, user=user)
    return await costs_query.costs(request.app.state.store, flt, group_by, step_seconds)


@router.get("/api/v1/sessions")
async def sessions(
    request: Request, start: str | None = _START, end: str | None = _END,
    service: str | None = None, app: str | None = None, user: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, max_length=8192, description="next_cursor of the previous page"),
) -> Any:
    """Conversations grouped by session id, most recently active first, a page at a time (`next_cursor`)."""
    window = parse_window(start, end, default="-7d")
    flt = LlmFilter.of(window, service=service, app=app, user=user)
    return await sessions_query.list_sessions(request.app.state.store, flt, limit, cursor or None)


@router.get("/api/v1/sessions/{session_id:path}")
async def session(request: Request, session_id: str, start: str | None = _START, end: str | None = _END) -> Any:
    """One session: its summary and its traces in order."""
    window = parse_window(start, end, default="-30d")
    found = await sessions_query.get_session(request.app.state.store, window, session_id)
    if found is None:
        return error_response(404, "not_found", f"no session {session_id!r} in this time range", "session_id")
    return found
