"""A stand-in for a ClickHouse server: ClickHouse's HTTP interface in front of chDB.

What it is: a small HTTP server that speaks the part of ClickHouse's HTTP protocol that
clickhouse-connect uses, and runs every statement on chDB, which is the real ClickHouse SQL
engine (same parser, same table engines, same input/output formats). Tests use it to run the
real clickhouse-connect HTTP client over real loopback HTTP, because no modern ClickHouse
server can be installed on this machine (Debian's package is from 2018).

What it is not: a ClickHouse server. There is no native TCP protocol, no users/roles/quotas
(one optional user and password, checked on every request), no HTTP sessions (`session_id`
is ignored: every request starts from the default settings), no response compression, no
progress headers, no `client_protocol_version` Native variant (clickhouse-connect's probe sees
that and falls back to plain Native), no multipart/external data, no Native-format inserts,
and nothing distributed or replicated (no clusters, Keeper, `ON CLUSTER`, Replicated* or
Distributed engines). Defaults are chDB's, which differ from a server's in a few settings
(see `system.settings WHERE changed`); the two that change what SQL means are reset.

Protocol handled: how a request is read (SQL, data, settings, parameters, credentials, body
encodings) and how errors look is llmlens's own ClickHouse protocol module
(llmlens.server.sql.clickhouse_protocol, behind the read-only `--sql-port` interface); this
endpoint adds writes: `GET /ping`; `GET|POST /?query=...`, any URL parameter not of the
transport a query-level setting; `INSERT ... FORMAT Arrow|ArrowStream|Parquet` with the data in the
body (decoded with pyarrow, inserted through chDB's `Python()` table function), text-format
inserts (`VALUES`, `JSONEachRow`, ...) passed through; request bodies with Content-Encoding
gzip, deflate or lz4. Answers carry the `X-ClickHouse-Query-Id`, `-Format`, `-Timezone`,
`-Summary` and `-Server-Display-Name` headers; errors are `Code: N. DB::Exception: ...`
bodies with `X-ClickHouse-Exception-Code`, status 401/400/404/500 as a server chooses.

Run: `python -m tests.chdb_http_endpoint --port 0 --data-dir DIR [--user U --password P]`;
the first line on stdout is `listening on HOST:PORT` once it accepts connections.
"""

from __future__ import annotations

import argparse
import hmac
import io
import json
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from llmlens.server.sql.clickhouse_protocol import (
    HTTP_STATUS,
    ClickHouseError,
    Request,
    authentication_failed,
    content_type,
    credentials,
    decode_body,
    error_body,
    parse_request,
)

_INSERT_WITH_FORMAT = re.compile(r"^\s*INSERT\s+INTO\s+(?P<target>.+?)\s+FORMAT\s+(?P<fmt>\w+)\s*$",
                                 re.IGNORECASE | re.DOTALL)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_ERROR_CODE = re.compile(r"^Code: (\d+)\.")
_ARROW_FORMATS = {"arrow", "arrowstream", "parquet"}
_UNSUPPORTED = 1  # UNSUPPORTED_METHOD
_STD_EXCEPTION = 1001


@dataclass
class Answer:
    body: bytes
    fmt: str
    summary: dict[str, str]


class ChdbEngine:
    """chDB connections for concurrent requests: one per request in flight, reused after.

    Why a pool: a chDB connection runs one query at a time, and `SET`/`USE` are per
    connection, so a connection is lent to one request, reset, and then returned.
    """

    def __init__(self, data_dir: str) -> None:
        import chdb  # imported here so `--help` works without the engine

        self._chdb = chdb
        self._path = data_dir
        self._free: list[Any] = []
        self._lock = threading.Lock()
        self._put(self._new())  # fail at start-up, not at the first request
        self.version, self.timezone = self._server_facts()

    def _new(self) -> Any:
        conn = self._chdb.connect(self._path)
        # chDB changes a few defaults for interactive use; a server would not run `SELEC` as a
        # SELECT of an identifier, nor allow introspection functions unless configured to.
        _query(conn, "SET implicit_select = 0, allow_introspection_functions = 0", "TabSeparated")
        return conn

    def _take(self) -> Any:
        with self._lock:
            if self._free:
                return self._free.pop()
        return self._new()

    def _put(self, conn: Any) -> None:
        with self._lock:
            self._free.append(conn)

    def _server_facts(self) -> tuple[str, str]:
        conn = self._take()
        try:
            row = json.loads(conn.query("SELECT version() AS v, timezone() AS tz", "JSONEachRow").bytes())
        finally:
            self._put(conn)
        return row["v"], row["tz"]

    def run(self, request: Request) -> Answer:
        conn = self._take()
        reusable = True
        try:
            database = request.params.get("database")
            if database:
                _query(conn, f"USE {_quote_identifier(database)}", "TabSeparated")
            for name, value in request.settings.items():
                _query(conn, f"SET {name} = {_string_literal(value)}", "TabSeparated")
            return self._execute(conn, request)
        finally:
            # Undo the request's session changes so the next request starts from defaults.
            try:
                for name in request.settings:
                    _query(conn, f"SET {name} = DEFAULT", "TabSeparated")
                if request.params.get("database"):
                    _query(conn, "USE default", "TabSeparated")
            except ClickHouseError:
                reusable = False
            if reusable:
                self._put(conn)
            else:
                conn.close()

    def _execute(self, conn: Any, request: Request) -> Answer:
        insert = _INSERT_WITH_FORMAT.match(request.sql) if request.data else None
        if insert and insert.group("fmt").lower() in _ARROW_FORMATS:
            return _insert_arrow(conn, insert.group("target"), insert.group("fmt"), request.data)
        if insert and insert.group("fmt").lower() == "native":
            raise ClickHouseError(_UNSUPPORTED, "this test endpoint does not take Native-format inserts; "
                                                "use Arrow (client.insert_arrow) or a text format")
        sql = request.sql
        if request.data:  # the body continues the query (inline insert data, or the rest of the SQL)
            sql = f"{sql}\n{request.data.decode('utf-8')}" if sql else request.data.decode("utf-8")
        if not sql.strip():
            raise ClickHouseError(62, "Syntax error: empty query. (SYNTAX_ERROR)")
        match = _TRAILING_FORMAT.search(sql)
        fmt = match.group(1) if match else request.params.get("default_format", "TabSeparated")
        started = time.perf_counter_ns()
        result = _query(conn, sql, fmt, request.query_params)
        body = result.bytes() or b""
        return Answer(bytes(body), fmt, _summary(result, time.perf_counter_ns() - started, len(body)))


def _insert_arrow(conn: Any, target: str, fmt: str, data: bytes) -> Answer:
    import pyarrow as pa
    import pyarrow.ipc
    import pyarrow.parquet

    try:
        if fmt.lower() == "arrow":
            table = pa.ipc.open_file(pa.BufferReader(data)).read_all()
        elif fmt.lower() == "arrowstream":
            table = pa.ipc.open_stream(pa.BufferReader(data)).read_all()
        else:
            table = pyarrow.parquet.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow's errors name the problem; a server says "cannot read"
        raise ClickHouseError(33, f"Cannot read all data in {fmt} format: {exc}. (CANNOT_READ_ALL_DATA)") from exc
    arrow_rows = table  # noqa: F841 -- chDB's Python() table function finds this local by name
    started = time.perf_counter_ns()
    result = _query(conn, f"INSERT INTO {target} SELECT * FROM Python(arrow_rows)", "TabSeparated")
    summary = _summary(result, time.perf_counter_ns() - started, 0)
    summary["written_rows"] = str(table.num_rows)
    return Answer(b"", fmt, summary)


def _query(conn: Any, sql: str, fmt: str, params: dict[str, str] | None = None) -> Any:
    try:
        if params:
            return conn.query(sql, fmt, params=params)
        return conn.query(sql, fmt)
    except Exception as exc:
        text = str(exc).strip()
        match = _ERROR_CODE.match(text)
        if match:
            raise ClickHouseError(int(match.group(1)), text.split(". ", 1)[1].removeprefix("DB::Exception: ")) from exc
        raise ClickHouseError(_STD_EXCEPTION, text) from exc


def _summary(result: Any, elapsed_ns: int, result_bytes: int) -> dict[str, str]:
    def number(name: str) -> int:
        try:
            return int(getattr(result, name)())
        except Exception:  # older chDB results lack some counters; a server would send 0 too
            return 0

    return {"read_rows": str(number("rows_read")), "read_bytes": str(number("bytes_read")),
            "written_rows": str(number("rows_written")), "written_bytes": str(number("bytes_written")),
            "total_rows_to_read": "0", "result_rows": "0", "result_bytes": str(result_bytes),
            "elapsed_ns": str(elapsed_ns)}


def _string_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def make_handler(engine: ChdbEngine, allowed: tuple[str, str] | None,
                 log: Callable[[str], None] | None,
                 query_log: Callable[[Request], None] | None = None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: clickhouse-connect pools its connections
        server_version = "chdb-http-endpoint"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes; without this, Nagle's algorithm and the
            # client's delayed ACK add ~40 ms to every keep-alive request.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:  # noqa: N802 -- the name http.server dispatches to
            if urlsplit(self.path).path in ("/ping", "/ping/"):
                self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
                return
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def _serve(self, method: str) -> None:
            query_id = ""
            try:
                body = decode_body(self._read_body(), self.headers.get("Content-Encoding"))
                request = parse_request(method, urlsplit(self.path).query, body)
                query_id = request.params.get("query_id") or str(uuid.uuid4())
                self._authenticate(request.params)
                if log:
                    log(f"{method} settings={sorted(request.settings)} sql={request.sql[:200]!r}")
                if query_log:
                    query_log(request)
                answer = engine.run(request)
            except ClickHouseError as exc:
                self._send_error(exc, query_id or str(uuid.uuid4()))
                return
            except Exception as exc:  # a bug here must still answer, as a server's STD_EXCEPTION
                self._send_error(ClickHouseError(_STD_EXCEPTION, f"{type(exc).__name__}: {exc}"), query_id)
                return
            self._send(200, answer.body, {
                "Content-Type": content_type(answer.fmt),
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Format": answer.fmt,
                "X-ClickHouse-Timezone": engine.timezone,
                "X-ClickHouse-Server-Display-Name": "chdb-http-endpoint",
                "X-ClickHouse-Summary": json.dumps(answer.summary, separators=(",", ":")),
            })

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _authenticate(self, params: dict[str, str]) -> None:
            if allowed is None:
                return
            headers = {name.lower(): value for name, value in self.headers.items()}
            user, password = credentials(headers, params)
            ok = hmac.compare_digest(user.encode(), allowed[0].encode()) and hmac.compare_digest(
                password.encode(), allowed[1].encode())
            if not ok:
                raise authentication_failed(user)

        def _send_error(self, exc: ClickHouseError, query_id: str) -> None:
            self._send(HTTP_STATUS.get(exc.code, 500), error_body(exc, engine.version), {
                "Content-Type": "text/plain; charset=UTF-8",
                "X-ClickHouse-Exception-Code": str(exc.code),
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Server-Display-Name": "chdb-http-endpoint",
            })

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- http.server's signature
            pass  # requests are logged by _serve when --verbose; the access log is noise

    return Handler


def _query_logger(path: str) -> Callable[[Request], None]:
    lock = threading.Lock()

    def write(request: Request) -> None:
        line = json.dumps({"sql": request.sql, "params": request.query_params}) + "\n"
        with lock, open(path, "a", encoding="utf-8") as fh:
            fh.write(line)

    return write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--user", default="default")
    parser.add_argument("--password", help="require this password (Basic auth or X-ClickHouse-Key)")
    parser.add_argument("--verbose", action="store_true", help="log every statement to stderr")
    parser.add_argument("--query-log", metavar="FILE",
                        help="append every query (SQL and parameters) to FILE as a JSON line, for tests to replay")
    args = parser.parse_args(argv)
    engine = ChdbEngine(args.data_dir)
    allowed = (args.user, args.password) if args.password is not None else None
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if args.verbose else None
    query_log = _query_logger(args.query_log) if args.query_log else None
    ThreadingHTTPServer.request_queue_size = 64  # the default backlog of 5 refuses bursts of pooled clients
    server = ThreadingHTTPServer((args.host, args.port), make_handler(engine, allowed, log, query_log))
    server.daemon_threads = True
    print(f"listening on {args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
