"""A read-only ClickHouse-compatible HTTP interface to the store on its own port (`--sql-port`),
so Grafana's ClickHouse data source (protocol `http`), clickhouse-connect and other ClickHouse
HTTP clients read the embedded store as they would read a ClickHouse server.

What it answers: `GET /ping` and `GET /` ("Ok."); `GET|POST /?query=...` (any path but /ping)
with the SQL in `query=` and/or the body, `default_format=` or a FORMAT clause (every output
format of ClickHouse: JSON, JSONCompact, TabSeparated, RowBinaryWithNamesAndTypes, Native...),
`param_<name>=` for `{name:Type}` placeholders, `database=` (the store's only), `query_id=`,
`client_protocol_version=` for Native (native.py: what clickhouse-go, under Grafana, asks for).
Each statement goes through the SQL engine: one read, checked on ClickHouse's parse tree,
readonly=1, the [sql] limits.

Settings sent as URL parameters: the transport ones are ignored (sessions, compression,
progress headers), as are `readonly` of 1 or 2 and the limits (the server's [sql] limits apply);
any other setting is refused as a readonly ClickHouse server refuses it (code 164). Clients
read `system.settings` first and see every setting as read-only there, so clickhouse-connect
leaves its optional ones out.

Who may read: with an API key set, any user name with the key as password (basic auth, the
X-ClickHouse-User/X-ClickHouse-Key headers or user/password parameters); without one, anyone
who can reach the port, which listens on the server's --host (loopback unless a key is set) and
answers only loopback Host names (or --allowed-hosts), as the main port does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import Response
from starlette.routing import Route

from llmlens.server.api.security import HostCheckMiddleware, HostPolicy
from llmlens.server.errors import (
    Overloaded,
    QueryTimeout,
    ResultTooLarge,
    ServerError,
    SqlError,
    SqlRefused,
    StoreError,
)
from llmlens.server.services import Service
from llmlens.server.settings import ServerSettings
from llmlens.server.sql import clickhouse_protocol as ch
from llmlens.server.sql import native
from llmlens.server.sql.engine import MAX_QUERY_CHARS, SqlEngine

log = logging.getLogger("llmlens.sql")

SERVER_NAME = "llmlens"
_DEFAULT_FORMAT = "TabSeparated"
# Settings whose change is accepted and not applied: the [sql] limits cap every query anyway.
_LIMIT_SETTINGS = frozenset({
    "max_execution_time", "max_result_rows", "max_result_bytes", "max_memory_usage", "result_overflow_mode",
    "timeout_overflow_mode", "max_rows_to_read", "max_bytes_to_read", "max_threads", "max_block_size",
})
_TIMEOUT_EXCEEDED, _TOO_MANY_ROWS_OR_BYTES, _TOO_MANY_SIMULTANEOUS_QUERIES = 159, 396, 202


def clickhouse_app(engine: SqlEngine, api_key: str | None, version: str) -> Starlette:
    async def ping(request: HttpRequest) -> Response:
        return Response(b"Ok.\n", media_type="text/html; charset=UTF-8")

    async def query(request: HttpRequest) -> Response:
        query_id = request.query_params.get("query_id") or str(uuid.uuid4())
        try:
            if request.method == "GET" and not request.url.query:
                return await ping(request)
            body = await _read_body(request)
            parsed = ch.parse_request(request.method, request.url.query, body)
            _authenticate(api_key, request, parsed.params)
            _check_database(engine, parsed.params.get("database"))
            _check_settings(parsed.settings)
            sql = ch.full_sql(parsed)
            fmt = parsed.params.get("default_format") or _DEFAULT_FORMAT
            result = await engine.run(sql, fmt, parsed.query_params)
            body = result.body
            revision = _revision(parsed.params.get("client_protocol_version"))
            if revision and result.fmt.lower() == "native":
                body = native.with_revision(body, revision)
        except Exception as exc:  # every failure is answered as a server answers it
            return _error(exc, query_id, version)
        summary = {"read_rows": str(result.rows_read), "read_bytes": str(result.bytes_read), "written_rows": "0",
                   "written_bytes": "0", "total_rows_to_read": "0", "result_rows": "0",
                   "result_bytes": str(len(body)), "elapsed_ns": str(int(result.elapsed_s * 1e9))}
        return Response(body, media_type=ch.content_type(result.fmt), headers={
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Format": result.fmt,
            "X-ClickHouse-Timezone": "UTC",
            "X-ClickHouse-Server-Display-Name": SERVER_NAME,
            "X-ClickHouse-Summary": orjson.dumps(summary).decode(),
        })

    return Starlette(routes=[
        Route("/ping", ping, methods=["GET", "HEAD"]),
        Route("/{path:path}", query, methods=["GET", "POST"]),
    ])


async def _read_body(request: HttpRequest) -> bytes:
    limit = MAX_QUERY_CHARS * 4  # UTF-8 bytes of the longest query accepted
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ch.ClickHouseError(ch.STD_EXCEPTION, f"the request body is over {limit} bytes; this interface "
                                                       "reads data and takes no inserts")
        chunks.append(chunk)
    return ch.decode_body(b"".join(chunks), request.headers.get("content-encoding"), limit)


def _authenticate(api_key: str | None, request: HttpRequest, params: dict[str, str]) -> None:
    if api_key is None:
        return
    user, password = ch.credentials(request.headers, params)
    if not hmac.compare_digest(password.encode(), api_key.encode()):
        raise ch.authentication_failed(user)


def _revision(text: str | None) -> int:
    if not text:
        return 0
    if not text.strip().isdigit():
        raise ch.ClickHouseError(ch.STD_EXCEPTION, f"client_protocol_version must be a number, got {text[:40]!r}")
    return int(text)


def _check_database(engine: SqlEngine, database: str | None) -> None:
    if database and database != engine.database:
        raise ch.ClickHouseError(ch.DATABASE_ACCESS_DENIED, f"this interface reads the store's database "
                                 f"{engine.database!r} only, not {database[:100]!r}. (DATABASE_ACCESS_DENIED)")


def _check_settings(settings: dict[str, str]) -> None:
    for name, value in settings.items():
        if name in _LIMIT_SETTINGS or (name == "readonly" and value.strip() in ("1", "2")):
            continue
        raise ch.ClickHouseError(ch.READONLY, f"Cannot modify '{name}' setting in readonly mode: this interface "
                                              "is read-only. (READONLY)")


def _error(exc: Exception, query_id: str, version: str) -> Response:
    if isinstance(exc, ch.ClickHouseError):
        error = exc
    elif isinstance(exc, SqlRefused):
        error = ch.ClickHouseError(ch.READONLY, f"{exc}. (READONLY)")
    elif isinstance(exc, SqlError):
        error = ch.ClickHouseError(exc.code or ch.STD_EXCEPTION, str(exc))
    elif isinstance(exc, QueryTimeout):
        error = ch.ClickHouseError(_TIMEOUT_EXCEEDED, str(exc))
    elif isinstance(exc, ResultTooLarge):
        error = ch.ClickHouseError(_TOO_MANY_ROWS_OR_BYTES, str(exc))
    elif isinstance(exc, Overloaded):
        error = ch.ClickHouseError(_TOO_MANY_SIMULTANEOUS_QUERIES, f"{exc}. (TOO_MANY_SIMULTANEOUS_QUERIES)")
    elif isinstance(exc, native.NativeError | StoreError | ServerError):
        error = ch.ClickHouseError(ch.STD_EXCEPTION, str(exc))
    else:
        log.exception("the SQL interface failed on a request")
        error = ch.ClickHouseError(ch.STD_EXCEPTION, "the server failed on this request; see its log")
    return Response(ch.error_body(error, version), status_code=ch.HTTP_STATUS.get(error.code, 500),
                    media_type="text/plain; charset=UTF-8", headers={
                        "X-ClickHouse-Exception-Code": str(error.code),
                        "X-ClickHouse-Query-Id": query_id,
                        "X-ClickHouse-Server-Display-Name": SERVER_NAME,
                    })


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the app's own event loop: the main server owns the process's signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def sql_http_service(engine: SqlEngine, settings: ServerSettings, version: str) -> Service:
    """The interface as a service of the app's lifespan: listening once started, drained on stop."""
    server: _EmbeddedServer | None = None
    task: asyncio.Task[Any] | None = None

    async def start() -> None:
        nonlocal server, task
        sock = _listen(settings.host, settings.sql.port)
        # Without an API key, only loopback Host names are answered, as on the main port: a web page that
        # rebinds its DNS name to 127.0.0.1 must not read the store through this port either.
        app = HostCheckMiddleware(clickhouse_app(engine, settings.api_key, version),
                                  policy=HostPolicy.of(settings.api_key, settings.allowed_hosts))
        config = uvicorn.Config(app, lifespan="off", log_config=None,
                                access_log=False, server_header=False, limit_concurrency=128,
                                timeout_keep_alive=30, timeout_graceful_shutdown=5)
        server = _EmbeddedServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            task.result()  # raises why it stopped
        log.info("ClickHouse-compatible SQL interface (read-only) on %s:%d", settings.host, settings.sql.port)

    async def stop() -> None:
        if server is not None and task is not None:
            server.should_exit = True
            await task

    return Service("SQL interface", start, stop)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen for the SQL interface (--sql-port) on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock
