"""The web UI: server-rendered page shells plus static ES modules that fetch the JSON API."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from llmlens.server.web.api_reference import reference
from llmlens.server.web.login import router as login_router
from llmlens.server.web.pages import render

# Served through a route (not app.mount) so that including this router is all the wiring needed.
_static = StaticFiles(directory=str(Path(__file__).parent / "static"))
_HEX_ID = re.compile(r"^[0-9A-Za-z_\-.:]{1,128}$")

router = APIRouter(include_in_schema=False)
router.include_router(login_router)


# Pages whose shell needs nothing from the URL path: (path, template, navigation entry, title).
# /explore/metrics is the OTLP metrics explorer (/metrics is the Prometheus endpoint); on /alerts,
# ?rule=&alert= (the notifications' links) highlights one; on /sql, ?q= runs a query; on /profiles,
# ?service=&span_id=&trace_id= (the trace view's link) shows one span's samples.
_SHELLS = [
    ("/", "overview.html", "overview", "Overview"),
    ("/traces", "traces.html", "traces", "Traces"),
    ("/compare", "compare.html", "traces", "Compare traces"),
    ("/quality", "quality.html", "overview", "Quality"),
    ("/explore/metrics", "explore_metrics.html", "metrics", "Metrics"),
    ("/services", "services.html", "services", "Services"),
    ("/sessions", "sessions.html", "sessions", "Sessions"),
    ("/logs", "logs.html", "logs", "Logs"),
    ("/costs", "costs.html", "costs", "Costs"),
    ("/alerts", "alerts.html", "alerts", "Alerts"),
    ("/sql", "sql.html", "sql", "SQL"),
    ("/profiles", "profiles.html", "profiles", "Profiles"),
]


def _shell(template: str, nav: str, title: str):  # noqa: ANN202 -- a route endpoint
    async def page(request: Request) -> HTMLResponse:
        return render(request, template, nav=nav, title=title)
    return page


for _path, _template, _nav, _title in _SHELLS:
    router.add_api_route(_path, _shell(_template, _nav, _title), methods=["GET"], response_class=HTMLResponse)


@router.get("/traces/{trace_id}", response_class=HTMLResponse)
async def trace(request: Request, trace_id: str) -> HTMLResponse:
    if not _HEX_ID.match(trace_id):
        raise HTTPException(404, "no such trace")
    return render(request, "trace.html", nav="traces", title=f"Trace {trace_id[:8]}", trace_id=trace_id)


@router.get("/sessions/{session_id:path}", response_class=HTMLResponse)
async def session(request: Request, session_id: str) -> HTMLResponse:
    return render(request, "session.html", nav="sessions", title="Session", session_id=session_id)


@router.get("/docs", response_class=HTMLResponse)
async def api_docs(request: Request) -> HTMLResponse:
    """The API reference, rendered here from the OpenAPI document (no third-party script or CDN)."""
    groups = reference(request.app.openapi())
    return render(request, "docs.html", nav="", title="API reference", groups=groups)


@router.get("/static/{path:path}")
async def static(request: Request, path: str) -> Response:
    return await _static.get_response(path, request.scope)
