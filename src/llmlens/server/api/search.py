"""GET /api/v1/search?q=...: traces matching a TraceQL-like query."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from llmlens.server.api.errors import error_response
from llmlens.server.errors import BadParameter
from llmlens.server.query.search import search_traces
from llmlens.server.query.traceql import TraceQLError, compile_query
from llmlens.server.query.window import parse_window

router = APIRouter()

MAX_LIMIT = 1000


@router.get("/api/v1/search")
async def search(
    request: Request,
    q: str = Query("{ }", description='TraceQL-like query, e.g. { duration > 2s && status = error }'),
    start: str | None = Query(None, description="RFC 3339 or relative (-1h); default -1h"),
    end: str | None = Query(None, description="RFC 3339 or relative; default now"),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, max_length=512, description="next_cursor of the previous page"),
) -> Any:
    """Traces with a span (or spans) matching the query, newest matching span first, a page at a time:
    pass `next_cursor` back as `cursor` (with the same q, start and end) for the next page."""
    if cursor is not None and not cursor.strip():
        raise BadParameter("cursor", "cursor is empty: leave it out for the first page, then pass next_cursor")
    window = parse_window(start, end)  # a bad time is a 400 from the app's error handler
    try:
        compiled = compile_query(q)
    except TraceQLError as exc:
        return error_response(400, "bad_query", str(exc), "q", position=exc.position, line=exc.line,
                              column=exc.column)
    try:
        page = await search_traces(request.app.state.store, compiled, window, limit, cursor)
    except Exception as exc:
        # RE2 may still refuse a pattern Python's re accepted: that is the query's fault.
        if "re2" in str(exc):
            return error_response(400, "bad_query", "invalid regular expression (RE2 syntax)", "q")
        raise
    return {**page, "query": q}
