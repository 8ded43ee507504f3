"""The login page for a server with an API key: the key once, then a session cookie (see api/auth.py)."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from llmlens.server.api.auth import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    issue_session,
    key_matches,
    request_is_https,
    safe_next,
    session_is_valid,
)
from llmlens.server.web.pages import render

router = APIRouter(include_in_schema=False)
MAX_FORM_BYTES = 8192
WRONG_KEY_DELAY_S = 0.5  # slows guessing; the key has at least 16 characters anyway


def _api_key(request: Request) -> str | None:
    settings = getattr(request.app.state, "settings", None)
    return getattr(settings, "api_key", None)


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:  # noqa: A002 -- the URL's name
    target = safe_next(next)
    key = _api_key(request)
    token = request.cookies.get(SESSION_COOKIE)
    if not key or (token and session_is_valid(key.encode(), token)):
        return RedirectResponse(target, status_code=303)
    return render(request, "login.html", nav="", title="Log in", next=target, error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    key = _api_key(request)
    form = await _form(request)
    target = safe_next(form.get("next"))
    if not key:
        return RedirectResponse(target, status_code=303)
    if form.get("key") is None or not key_matches(key, form["key"].strip()):
        await asyncio.sleep(WRONG_KEY_DELAY_S)
        return render(request, "login.html", nav="", title="Log in", next=target,
                      error="That is not this server's API key.", status_code=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, issue_session(key), max_age=SESSION_SECONDS, path="/",
                        httponly=True, samesite="lax", secure=request_is_https(request.scope))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=request_is_https(request.scope))
    return response


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form's fields (first value of each), reading at most MAX_FORM_BYTES."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}
