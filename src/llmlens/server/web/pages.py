"""Rendering a page shell: the templates, the navigation and what every page's header needs."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.responses import HTMLResponse

from llmlens import __version__

if TYPE_CHECKING:
    from fastapi.templating import Jinja2Templates


@functools.cache
def _templates() -> Jinja2Templates:
    # Made on the first page asked for, not at the server's start: Jinja2 is a tenth of a second of
    # imports that ingest and the API never need.
    from fastapi.templating import Jinja2Templates

    return Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

PAGES = {
    "overview": ("/", "Overview"),
    "traces": ("/traces", "Traces"),
    "services": ("/services", "Services"),
    "sessions": ("/sessions", "Sessions"),
    "logs": ("/logs", "Logs"),
    "costs": ("/costs", "Costs"),
    "metrics": ("/explore/metrics", "Metrics"),
    "alerts": ("/alerts", "Alerts"),
    "profiles": ("/profiles", "Profiles"),
    "sql": ("/sql", "SQL"),
}


def render(request: Request, template: str, *, nav: str, title: str, status_code: int = 200,
           **context: object) -> HTMLResponse:
    settings = getattr(request.app.state, "settings", None)
    return _templates().TemplateResponse(request, template, {
        "title": title, "nav": nav, "pages": PAGES, "version": __version__,
        "logged_in": bool(getattr(settings, "api_key", None)), **context}, status_code=status_code)
