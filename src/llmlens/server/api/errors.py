"""One error envelope for the whole API: {"error": {"code", "message", "parameter"}}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmlens.server.query.errors import BadParameter
from llmlens.server.query.window import WindowError
from llmlens.server.store import Overloaded, QueryTimeout, StoreError

log = logging.getLogger("llmlens.api")


def error_response(status: int, code: str, message: str, parameter: str | None = None,
                   headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "parameter": parameter, **extra}}
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body")]
        parameter = loc[0] if loc else None
        message = first.get("msg", "invalid request")
        return error_response(400, "bad_parameter", f"{parameter}: {message}" if parameter else message, parameter)

    @app.exception_handler(BadParameter)
    async def _bad_parameter(request: Request, exc: BadParameter) -> JSONResponse:
        return error_response(400, "bad_parameter", str(exc), exc.parameter)

    @app.exception_handler(WindowError)
    async def _bad_window(request: Request, exc: WindowError) -> JSONResponse:
        return error_response(400, "bad_parameter", str(exc), exc.parameter)

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> JSONResponse:
        return error_response(400, "bad_parameter", f"a value is out of range: {exc}")

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        return error_response(429, "overloaded", str(exc), headers={"Retry-After": str(int(exc.retry_after) or 1)})

    @app.exception_handler(QueryTimeout)
    async def _timeout(request: Request, exc: QueryTimeout) -> JSONResponse:
        return error_response(504, "query_timeout", f"{exc}; narrow the time range or filters")

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
        log.error("query failed: %s", exc)
        return error_response(503, "store_error", "the store could not answer this query", headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(500, "internal_error", "the server failed on this request; see its log")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))
