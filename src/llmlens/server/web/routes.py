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


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request) -> HTMLResponse:
    return render(request, "overview.html", nav="overview", title="Overview")


@router.get("/traces", response_class=HTMLResponse)
async def traces(request: Request) -> HTMLResponse:
    return render(request, "traces.html", nav="traces", title="Traces")


@router.get("/traces/{trace_id}", response_class=HTMLResponse)
async def trace(request: Request, trace_id: str) -> HTMLResponse:
    if not _HEX_ID.match(trace_id):
        raise HTTPException(404, "no such trace")
    return render(request, "trace.html", nav="traces", title=f"Trace {trace_id[:8]}", trace_id=trace_id)


@router.get("/compare", response_class=HTMLResponse)
async def compare(request: Request) -> HTMLResponse:
    return render(request, "compare.html", nav="traces", title="Compare traces")


@router.get("/quality", response_class=HTMLResponse)
async def quality(request: Request) -> HTMLResponse:
    """Quality scores: each name over time, by model and app, and its distribution."""
    return render(request, "quality.html", nav="overview", title="Quality")


@router.get("/explore/metrics", response_class=HTMLResponse)
async def explore_metrics(request: Request) -> HTMLResponse:
    """The OTLP metrics explorer (/metrics is the Prometheus endpoint)."""
    return render(request, "explore_metrics.html", nav="metrics", title="Metrics")


@router.get("/services", response_class=HTMLResponse)
async def services(request: Request) -> HTMLResponse:
    return render(request, "services.html", nav="services", title="Services")


@router.get("/sessions", response_class=HTMLResponse)
async def sessions(request: Request) -> HTMLResponse:
    return render(request, "sessions.html", nav="sessions", title="Sessions")


@router.get("/sessions/{session_id:path}", response_class=HTMLResponse)
async def session(request: Request, session_id: str) -> HTMLResponse:
    return render(request, "session.html", nav="sessions", title="Session", session_id=session_id)


@router.get("/logs", response_class=HTMLResponse)
async def logs(request: Request) -> HTMLResponse:
    return render(request, "logs.html", nav="logs", title="Logs")


@router.get("/costs", response_class=HTMLResponse)
async def costs(request: Request) -> HTMLResponse:
    return render(request, "costs.html", nav="costs", title="Costs")


@router.get("/alerts", response_class=HTMLResponse)
async def alerts(request: Request) -> HTMLResponse:
    """Alerts, budgets, rules and history; ?rule=NAME&alert=FINGERPRINT (notifications' links) highlights one."""
    return render(request, "alerts.html", nav="alerts", title="Alerts")


@router.get("/sql", response_class=HTMLResponse)
async def sql(request: Request) -> HTMLResponse:
    """Read-only ClickHouse SQL over the store; ?q=QUERY runs it."""
    return render(request, "sql.html", nav="sql", title="SQL")


@router.get("/profiles", response_class=HTMLResponse)
async def profiles(request: Request) -> HTMLResponse:
    """Flame graphs of a service's profiles; ?service=&span_id=&trace_id= (the trace view's link) shows one span's."""
    return render(request, "profiles.html", nav="profiles", title="Profiles")


@router.get("/docs", response_class=HTMLResponse)
async def api_docs(request: Request) -> HTMLResponse:
    """The API reference, rendered here from the OpenAPI document (no third-party script or CDN)."""
    groups = reference(request.app.openapi())
    return render(request, "docs.html", nav="", title="API reference", groups=groups)


@router.get("/static/{path:path}")
async def static(request: Request, path: str) -> Response:
    return await _static.get_response(path, request.scope)
