"""One error envelope for the whole API: {"error": {"code", "message", "parameter"}}, with the
status from the server's one exception table (llmlens.server.errors)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmlens.server.errors import QueryTimeout, ServerError, Unavailable, answer, retry_after_header

log = logging.getLogger("llmlens.api")


def error_response(status: int, code: str, message: str, parameter: str | None = None,
                   headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "parameter": parameter, **extra}}
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ())]
        if loc and loc[0] in ("query", "path", "body", "header", "cookie"):  # where it was, not its name
            loc = loc[1:]
        parameter = loc[0] if loc else None
        message = first.get("msg", "invalid request")
        return error_response(400, "bad_parameter", f"{parameter}: {message}" if parameter else message, parameter)

    @app.exception_handler(ServerError)
    async def _server_error(request: Request, exc: ServerError) -> JSONResponse:
        found = answer(exc)
        message = str(exc)
        if isinstance(exc, QueryTimeout):
            message = f"{exc}; narrow the time range or filters"
        elif isinstance(exc, Unavailable):
            log.error("query failed on %s: %s", request.url.path, exc)
            message = "the store could not answer this query"
        return error_response(found.http_status, found.code, message, exc.parameter,
                              headers=retry_after_header(exc))

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> JSONResponse:
        return error_response(400, "bad_parameter", f"a value is out of range: {exc}")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(500, "internal_error", "the server failed on this request; see its log")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))
