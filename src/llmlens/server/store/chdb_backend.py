"""Embedded ClickHouse through chDB: one engine per process, bound to one data directory.

chDB rules this module follows (measured, see DESIGN): a connection per thread; the data
directory can be opened by one process only (we turn chDB's vague error into StoreLocked);
parameter values are parsed TSV-escaped, so backslash, tab, newline and CR are escaped first;
a streaming insert can lose its rows without an error, so each one is checked (insert_check.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from llmlens.server.errors import QueryTimeout, StoreError, StoreLocked
from llmlens.server.store.backend import insert_settings
from llmlens.server.store.disk import DiskWatch
from llmlens.server.store.insert_check import InsertCheck, NotStored
from llmlens.server.store.outage import OutageLog

log = logging.getLogger("llmlens.store.chdb")

_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
# Most of an embedded INSERT's CPU is fixed cost, not rows: ~10 ms for one row into llm_calls.
# One thread (the insert already runs on the writer's own thread; a pool costs more than it
# saves on blocks of a few thousand rows) and skip indexes built when parts merge rather than
# on every insert: 20% less CPU per insert of one request's rows into the three tables
# (37.8 -> 30.3 ms, in-process, interleaved). Young parts without indexes are small, read whole.
_INSERT_SETTINGS = {"max_threads": 1, "materialize_skip_indexes_on_insert": 0}


class ChdbBackend:
    name = "chdb"

    def __init__(self, data_dir: str | Path, query_timeout_s: float = 30.0) -> None:
        import chdb  # imported here: the SDK tier never pays for the engine

        self._chdb = chdb
        self.path = Path(data_dir).expanduser().resolve()
        self.path.mkdir(parents=True, exist_ok=True)
        self._timeout = float(query_timeout_s)
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self.disk = DiskWatch(self.path)
        self._checked = InsertCheck(self.fetch)
        self._insert_outage = OutageLog(log, "inserts into the embedded store fail",
                                        "inserts into the embedded store succeed again")
        self._conn()  # open now, so a locked directory fails at start-up, not at first query

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = self._chdb.connect(str(self.path))
            except Exception as exc:  # chDB raises a bare RuntimeError for every start-up failure
                if _locked_by_other_process(self.path):
                    raise StoreLocked(
                        f"the data directory {self.path} is in use by another llmlens process; "
                        "stop it, or pass a different --data-dir"
                    ) from exc
                raise StoreError(f"cannot open the chDB store at {self.path}: {exc}") from exc
            # A time limit per connection: one runaway query must not hold a reader forever.
            conn.query(f"SET max_execution_time = {self._timeout:g}", "CSV")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._query(sql, "CSV", params)

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        result = self._query(sql, "JSONEachRow", params)
        data = result.bytes() if hasattr(result, "bytes") else bytes(result)
        return [orjson.loads(line) for line in data.splitlines() if line]

    def insert(self, table: str, data: pa.Table, dedup_token: str) -> None:
        # Below the free-space floor or on a read-only disk: refuse before trying (DiskFull).
        self.disk.check()
        if data.num_rows == 0 or self._checked.confirmed(dedup_token):
            return  # nothing to store, or stored by an earlier try (the engine would drop the resend)
        self._checked.before(table, dedup_token)
        try:
            self._stream_insert(table, data, dedup_token)
            self._checked.after(table, dedup_token, data)
        except NotStored as exc:
            problem = self.disk.problem()  # the likely cause, when the disk shows it
            error = NotStored(f"{exc}: {problem}") if problem else exc
            self._insert_outage.failing(str(error))
            raise error from None
        except StoreError as exc:
            self._insert_outage.failing(str(exc))
            raise
        self._insert_outage.ok()

    def _stream_insert(self, table: str, data: pa.Table, dedup_token: str) -> None:
        # Arrow IPC bytes through a streaming insert, not the Python() table function: that
        # one reads the table back through the GIL from chDB's threads, and in a busy server
        # (event loop, gRPC) the GIL hand-offs cost more CPU than the insert itself.
        columns = ", ".join(f"`{name}`" for name in data.column_names)
        settings = ", ".join(f"{k} = {_setting_literal(v)}"
                             for k, v in (insert_settings(dedup_token) | _INSERT_SETTINGS).items())
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, data.schema) as writer:
            writer.write_table(data)
        conn = self._conn()
        try:
            inserter = conn.send_insert(f"INSERT INTO {table} ({columns}) SETTINGS {settings}", "ArrowStream")
            try:
                inserter.append(sink.getvalue().to_pybytes())
                inserter.finish()
            except BaseException:
                with contextlib.suppress(Exception):
                    inserter.cancel()
                raise
        except Exception as exc:
            raise StoreError(str(exc).split("\n", 1)[0][:2000]) from exc

    def watch_free_space(self, min_free_bytes: int) -> None:
        self.disk.min_free_bytes = int(min_free_bytes)

    def disk_problem(self) -> str | None:
        return self.disk.problem()

    def disk_bytes(self) -> int:
        rows = self.fetch("SELECT sum(bytes_on_disk) AS b FROM system.parts WHERE active AND database = currentDatabase()")
        return int(rows[0]["b"] or 0) if rows else 0

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):  # closing is best effort at shutdown
                conn.close()
        self._local = threading.local()

    def _discard(self, conn: Any) -> None:
        self._local.conn = None
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        with contextlib.suppress(Exception):
            conn.close()

    def _query(self, sql: str, fmt: str, params: Mapping[str, Any] | None) -> Any:
        conn = self._conn()
        try:
            if params:
                return conn.query(sql, fmt, params={k: _param(v) for k, v in params.items()})
            return conn.query(sql, fmt)
        except Exception as exc:
            # chDB keeps what a failed query had output and returns it with the next query's answer on the
            # connection: this thread starts afresh on a new one.
            self._discard(conn)
            message = str(exc).split("\n", 1)[0][:2000]
            if "TIMEOUT_EXCEEDED" in message:
                raise QueryTimeout(f"the query ran past its {self._timeout:g} s limit") from exc
            raise StoreError(message) from exc


def _param(value: Any) -> Any:
    if isinstance(value, str):
        return value.translate(_TSV_ESCAPES)
    if isinstance(value, list | tuple):  # Array(String) or Array(number): a quoted array literal
        return "[" + ",".join(_setting_literal(v) for v in value) + "]"
    if isinstance(value, bool):
        return "1" if value else "0"
    return value


def _setting_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)


def _locked_by_other_process(path: Path) -> bool:
    """chDB keeps a `status` file locked while an engine has the directory open."""
    status = path / "status"
    if not status.exists():
        return False
    import fcntl

    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
