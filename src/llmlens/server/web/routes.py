"""The web UI: server-rendered page shells plus static ES modules that fetch the JSON API."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.staticfiles import StaticFiles

from llmlens import __version__

_HERE = Path(__file__).parent
_templates = Jinja2Templates(directory=str(_HERE / "templates"))
# Served through a route (not app.mount) so that including this router is all the wiring needed.
_static = StaticFiles(directory=str(_HERE / "static"))
_HEX_ID = re.compile(r"^[0-9A-Za-z_\-.:]{1,128}$")

router = APIRouter(include_in_schema=False)

PAGES = {
    "overview": ("/", "Overview"),
    "traces": ("/traces", "Traces"),
    "sessions": ("/sessions", "Sessions"),
    "logs": ("/logs", "Logs"),
    "costs": ("/costs", "Costs"),
}


def _page(request: Request, template: str, nav: str, title: str, **context: object) -> HTMLResponse:
    return _templates.TemplateResponse(request, template, {
        "title": title, "nav": nav, "pages": PAGES, "version": __version__, **context})


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request) -> HTMLResponse:
    return _page(request, "overview.html", "overview", "Overview")


@router.get("/traces", response_class=HTMLResponse)
async def traces(request: Request) -> HTMLResponse:
    return _page(request, "traces.html", "traces", "Traces")


@router.get("/traces/{trace_id}", response_class=HTMLResponse)
async def trace(request: Request, trace_id: str) -> HTMLResponse:
    if not _HEX_ID.match(trace_id):
        raise HTTPException(404, "no such trace")
    return _page(request, "trace.html", "traces", f"Trace {trace_id[:8]}", trace_id=trace_id)


@router.get("/sessions", response_class=HTMLResponse)
async def sessions(request: Request) -> HTMLResponse:
    return _page(request, "sessions.html", "sessions", "Sessions")


@router.get("/sessions/{session_id:path}", response_class=HTMLResponse)
async def session(request: Request, session_id: str) -> HTMLResponse:
    return _page(request, "session.html", "sessions", "Session", session_id=session_id)


@router.get("/logs", response_class=HTMLResponse)
async def logs(request: Request) -> HTMLResponse:
    return _page(request, "logs.html", "logs", "Logs")


@router.get("/costs", response_class=HTMLResponse)
async def costs(request: Request) -> HTMLResponse:
    return _page(request, "costs.html", "costs", "Costs")


@router.get("/static/{path:path}")
async def static(request: Request, path: str) -> Response:
    return await _static.get_response(path, request.scope)
