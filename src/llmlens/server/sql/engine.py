"""Runs users' SQL on the store, read-only and within limits: the engine behind POST /api/v1/sql,
the SQL page and the ClickHouse-compatible HTTP interface.

Three locks on every statement, each enough alone for most hostile SQL:
1. ClickHouse's parser: `formatQuery` refuses several statements in one, `EXPLAIN AST` gives the
   tree that guard.py checks (reads only; no file, URL or system-secret access).
2. `readonly=1` on the connection: the engine itself refuses writes, DDL, setting changes
   (a query's `SETTINGS readonly=0` included) and table functions that reach outside.
3. Limits set before readonly, so they cannot be lifted: time, memory, result rows and bytes.

Embedded store: connections of its own to the chDB engine (one per worker thread, readonly
from their first statement; the store's writer and readers never share them). chDB leaves a
failed query's partial output in the connection, to be returned with the next query's, so a
connection that saw an error is closed and replaced. A ClickHouse server: the store's client,
with the same limits and readonly=1 sent with each query.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from llmlens.server.errors import Overloaded, QueryTimeout, ResultTooLarge, SqlError, SqlRefused, StoreError
from llmlens.server.settings import SqlSettings
from llmlens.server.sql.guard import Statement, check_read_only, parse_ast

MAX_QUERY_CHARS = 256 * 1024
# Queries admitted at once (running or waiting for a worker) per worker; past it, 429 at once rather
# than a queue that grows with every client retrying a slow query.
_ADMITTED_PER_WORKER = 4
# chDB raises the server's text; clickhouse-connect wraps it ("Received ClickHouse exception, code: N, server
# response: Code: N. DB::Exception: ... (for url ...)").
_ERROR = re.compile(r"(?:Code: (\d+)\. DB::Exception: )+")
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_TIMEOUT_EXCEEDED, _TOO_MANY_ROWS_OR_BYTES, _MEMORY_LIMIT_EXCEEDED = 159, 396, 241
_READONLY, _ACCESS_DENIED = 164, 497


@dataclass(frozen=True)
class SqlResult:
    body: bytes
    fmt: str
    statement: Statement
    elapsed_s: float
    rows_read: int
    bytes_read: int


def limit_settings(limits: SqlSettings) -> dict[str, Any]:
    """The settings every user query runs with; readonly comes last, once the others are set."""
    return {
        "max_execution_time": limits.timeout_s,
        "timeout_overflow_mode": "throw",
        "max_memory_usage": limits.max_memory_mb * 1024 * 1024,
        "max_result_rows": limits.max_result_rows,
        "max_result_bytes": limits.max_result_mb * 1024 * 1024,
        "result_overflow_mode": "throw",
        "allow_introspection_functions": 0,
        "readonly": 1,
    }


class SqlEngine:
    """`await engine.run(sql, fmt)`: checked, limited, on `max_concurrent` worker threads."""

    def __init__(self, backend: Any, limits: SqlSettings) -> None:
        self.limits = limits
        self._conns = _ChdbConnections(backend.path, limits) if backend.name == "chdb" else _ServerClient(backend, limits)
        self._pool = ThreadPoolExecutor(max_workers=limits.max_concurrent, thread_name_prefix="llmlens-sql")
        self._admitted = 0
        self._max_admitted = limits.max_concurrent * _ADMITTED_PER_WORKER

    @property
    def database(self) -> str:
        return self._conns.database

    async def run(self, sql: str, fmt: str, params: Mapping[str, str] | None = None,
                  allow_format: bool = True) -> SqlResult:
        if self._admitted >= self._max_admitted:  # on the event loop's thread: no lock needed
            raise Overloaded(f"{self._admitted} SQL queries are running or waiting ([sql] max_concurrent "
                             f"{self.limits.max_concurrent}); retry shortly", retry_after=self.limits.timeout_s)
        self._admitted += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, self.run_sync, sql, fmt, params, allow_format)
        finally:
            self._admitted -= 1

    def run_sync(self, sql: str, fmt: str, params: Mapping[str, str] | None = None,
                 allow_format: bool = True) -> SqlResult:
        if len(sql) > MAX_QUERY_CHARS:
            raise SqlRefused(f"the query is longer than {MAX_QUERY_CHARS} characters")
        if not sql.strip():
            raise SqlRefused("the query is empty")
        params = dict(params or {})
        statement = self.check(sql, params)
        if statement.output_format and not allow_format:
            raise SqlRefused(f"leave out FORMAT {statement.output_format}: this endpoint answers JSON")
        started = time.perf_counter()
        raw = self._conns.query(sql, None if statement.output_format else fmt, params)  # the query's FORMAT wins
        return SqlResult(raw.body, statement.output_format or fmt, statement, time.perf_counter() - started,
                         raw.rows_read, raw.bytes_read)

    def check(self, sql: str, params: Mapping[str, str]) -> Statement:
        """Parse with ClickHouse's parser and refuse anything but one read (SqlRefused, SqlError)."""
        try:
            formatted = self._conns.query("SELECT formatQuery({q:String})", "TSVRaw", {"q": sql}).body.decode()
        except SqlError as exc:  # the parser's message, without the wrapping query it was found in
            message = re.sub(r"[.:\s]*In scope SELECT formatQuery\(.*\)\.", ".", str(exc), flags=re.DOTALL)
            raise SqlError(message, exc.code) from None
        ast = self._conns.query(f"EXPLAIN AST {sql}", "TSVRaw", params).body.decode()
        return check_read_only(parse_ast(ast), formatted.split(None, 1)[0].upper() if formatted.strip() else "")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._conns.close()


@dataclass(frozen=True)
class _Raw:
    body: bytes
    rows_read: int = 0
    bytes_read: int = 0


class _ChdbConnections:
    """A readonly chDB connection per worker thread, replaced after any error."""

    database = "default"

    def __init__(self, path: Any, limits: SqlSettings) -> None:
        import chdb

        self._chdb, self._path, self._limits = chdb, str(path), limits
        self._local = threading.local()
        self._all: set[Any] = set()
        self._lock = threading.Lock()
        self._closed = False

    def query(self, sql: str, fmt: str | None, params: Mapping[str, str] | None) -> _Raw:
        conn = self._conn()
        fmt = fmt or "TabSeparated"  # a FORMAT clause in `sql` overrides it
        try:
            if params:
                result = conn.query(sql, fmt, params={k: str(v).translate(_TSV_ESCAPES) for k, v in params.items()})
            else:
                result = conn.query(sql, fmt)
        except Exception as exc:
            self._discard(conn)
            raise sql_error(str(exc), self._limits) from None
        return _Raw(bytes(result.bytes() or b""), _count(result.rows_read), _count(result.bytes_read))

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StoreError("the SQL engine is closed")
            conn = self._chdb.connect(self._path)
            for name, value in limit_settings(self._limits).items():
                conn.query(f"SET {name} = {value!r}" if isinstance(value, str) else f"SET {name} = {value}")
            self._local.conn = conn
            with self._lock:
                self._all.add(conn)
        return conn

    def _discard(self, conn: Any) -> None:
        self._local.conn = None
        with self._lock:
            self._all.discard(conn)
        with contextlib.suppress(Exception):
            conn.close()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            conns, self._all = self._all, set()
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()


class _ServerClient:
    """A ClickHouse server through the store's clickhouse-connect client, limits sent with each query."""

    def __init__(self, backend: Any, limits: SqlSettings) -> None:
        self._backend, self._limits = backend, limits
        self.database = backend.target.database

    def query(self, sql: str, fmt: str | None, params: Mapping[str, str] | None) -> _Raw:
        client = self._backend.client()
        # clickhouse-connect appends `FORMAT fmt`: not after a query's own FORMAT, nor to EXPLAIN AST, where
        # it would become part of the tree (TSVRaw and TabSeparated differ in no name the guard reads).
        if fmt == "TSVRaw":
            fmt = None
        try:
            body = client.raw_query(sql, parameters=dict(params) if params else None, fmt=fmt,
                                    settings=limit_settings(self._limits))
        except Exception as exc:
            raise sql_error(str(exc), self._limits) from None
        return _Raw(bytes(body))

    def close(self) -> None:
        return None  # the clients are the store's


def sql_error(text: str, limits: SqlSettings) -> Exception:
    """ClickHouse's `Code: N. DB::Exception: ...` -> the server's exception for it, keeping the message."""
    text = text.strip()
    found = _ERROR.search(text)
    code = int(found.group(1)) if found else 0
    message = text[found.end():] if found else text
    message = re.sub(r"\s*\((?:version [\d.]+|for url [^)]*)\)", "", message).strip()
    message = re.sub(r"(\([A-Z_]+\))\.? \1$", r"\1", message)[:4000]  # a nested exception names its code twice
    if code == _TIMEOUT_EXCEEDED:
        return QueryTimeout(f"the query ran past its {limits.timeout_s:g} s limit ([sql] timeout_s): {message}")
    if code == _TOO_MANY_ROWS_OR_BYTES:
        return ResultTooLarge(f"the result is over the limit of {limits.max_result_rows} rows or "
                              f"{limits.max_result_mb} MiB; add a LIMIT or aggregate: {message}")
    if code == _MEMORY_LIMIT_EXCEEDED:
        return ResultTooLarge(f"the query needs more than its {limits.max_memory_mb} MiB of memory: {message}")
    if code in (_READONLY, _ACCESS_DENIED):
        return SqlRefused(f"refused: this interface is read-only: {message}")
    return SqlError(message or "the query failed", code)


def _count(method: Any) -> int:
    try:
        return int(method())
    except Exception:  # older chDB results lack some counters
        return 0
