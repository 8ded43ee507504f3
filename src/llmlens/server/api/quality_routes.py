"""The quality view's API: quality scores aggregated by name, over time, by model and app."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from llmlens.server.api.errors import error_response
from llmlens.server.query import quality as quality_query
from llmlens.server.query.window import parse_window

router = APIRouter(tags=["llm"])

Text = Annotated[str | None, Query(max_length=1024)]


@router.get("/api/v1/quality")
async def quality(
    request: Request,
    start: Annotated[str | None, Query(description="RFC 3339 or relative like -24h; default -24h",
                                       max_length=64)] = None,
    end: Annotated[str | None, Query(description="RFC 3339 or relative; default now", max_length=64)] = None,
    name: Annotated[str | None, Query(description="the score name; default the most recorded",
                                      max_length=1024)] = None,
    group_by: Annotated[str, Query(description="the series' lines: model or app", max_length=16)] = "model",
    step: Annotated[str | None, Query(description="bucket size, e.g. 1m, 1h; default from the range",
                                      max_length=16)] = None,
    model: Text = None,
    app: Text = None,
) -> Any:
    """Every score name in the range (count, mean, min, max); for one name, its mean per bucket by model
    or app, its count, mean and p10/p50/p90 per model and app, a 10-bin distribution of its values
    (over 0..1 when they all lie there) and its labels. A score's model is that of the call it scores."""
    window = parse_window(start, end, default="-24h")
    filters = {k: v for k, v in {"model": model, "app": app}.items() if v}
    answer = await quality_query.quality(request.app.state.store, window, name=name, group_by=group_by,
                                         step_seconds=window.step_seconds(step), filters=filters)
    if name and answer["name"] is None:
        return error_response(404, "not_found", f"no scores named {name!r} in this time range", "name")
    return answer
