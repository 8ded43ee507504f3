"""Rendering a page shell: the templates, the navigation and what every page's header needs."""

from __future__ import annotations

from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from llmlens import __version__

_templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

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
    return _templates.TemplateResponse(request, template, {
        "title": title, "nav": nav, "pages": PAGES, "version": __version__,
        "logged_in": bool(getattr(settings, "api_key", None)), **context}, status_code=status_code)
