"""A ClickHouse server (or cluster entry point) over HTTP, through clickhouse-connect.

Same SQL and same answers as the embedded chDB backend: rows are read as raw JSONEachRow
and parsed here (not through clickhouse-connect's typed results), and the settings that
shape that JSON are pinned to chDB's values, so `fetch` returns the same dicts whichever
backend runs. Query parameters are bound on the server (`{name:Type}` placeholders).

Why a client per thread: a clickhouse-connect client is not safe for concurrent queries
from several threads, and the store runs a writer thread and a pool of readers. Clients
share urllib3's connection pool, which is thread-safe.

On a cluster (`cluster=NAME`) the tables the queries name are Distributed tables over Replicated
local tables (store/ddl.py); the SQL stays the same and the settings below make it right there.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
import pyarrow as pa

from llmlens.server.errors import QueryTimeout, StoreError
from llmlens.server.store.backend import insert_settings
from llmlens.server.store.ddl import Layout, check_cluster_name, create_database, string_literal

# chDB's values of the settings that decide how JSONEachRow renders values. Servers of other
# versions default some differently (64-bit integers were quoted by default before 25.x).
_JSON_SHAPE_SETTINGS: dict[str, Any] = {
    "output_format_json_quote_64bit_integers": 0,
    "output_format_json_quote_64bit_floats": 0,
    "output_format_json_quote_decimals": 0,
    "output_format_json_quote_denormals": 0,
    "output_format_json_named_tuples_as_objects": 1,
    "output_format_json_escape_forward_slashes": 1,
    "output_format_json_map_as_array_of_tuples": 0,
    "output_format_decimal_trailing_zeros": 0,
    "date_time_output_format": "simple",
}
# On a cluster, for every read. The queries were written for one server; these keep them right and
# cheap over Distributed tables:
# - distributed_product_mode: a query over a Distributed table with an IN (subquery) or JOIN over
#   another one (the trace list, sessions, search, the service graph) is refused by default ('deny').
#   'global' runs the subquery once and sends its result to every shard: right whatever the tables'
#   sharding (the service graph's "services that have an embedded database" spans all traces).
# - optimize_skip_unused_shards: WHERE TraceId = ... (one trace's spans, calls, scores, its
#   trace_index rows and the otel_traces_trace_id_ts view) reads only the shard the id hashes to.
# GROUP BY over a Distributed table is aggregated on each shard and merged by the host llmlens asks;
# grouped by TraceId (the sharding key's column) each shard finishes it alone
# (optimize_distributed_group_by_sharding_key, on by default). FINAL is applied by each shard to
# its own rows: right for the alert tables, sharded by Rule so all versions of a row share a shard.
_CLUSTER_READ_SETTINGS: dict[str, Any] = {
    "distributed_product_mode": "global",
    "optimize_skip_unused_shards": 1,
}
# On a cluster, for every insert (into a Distributed table). insert_distributed_sync (the old name of
# distributed_foreground_insert, accepted by every version): the INSERT returns once each shard's
# part of the block is written on one of its replicas, so a 2xx still means stored, and the
# block's insert_deduplication_token travels with each part to the Replicated table, which drops a
# retried part. The background mode would acknowledge rows only queued on the receiving host's disk.
# The writer's resend check (store/dedup.py) reads what is stored through the Distributed tables; a
# replica that has not yet fetched a part written a moment ago on another misses it, so a resend
# arriving within that replication lag is stored again (insert_quorum in the user's profile closes it).
_CLUSTER_INSERT_SETTINGS: dict[str, Any] = {"insert_distributed_sync": 1}
_AUTHENTICATION_FAILED = 516
_UNKNOWN_DATABASE = 81
_TIMEOUT_EXCEEDED = 159
_CLUSTER_DOESNT_EXIST = 701


@dataclass(frozen=True)
class ClickHouseTarget:
    """Where and as whom to connect, parsed from `http[s]://user:pass@host:port/database`."""

    secure: bool
    host: str
    port: int
    username: str
    password: str
    database: str

    @property
    def address(self) -> str:
        """host:port, for messages: never the credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def parse(cls, url: str) -> ClickHouseTarget:
        # Messages never quote the URL or urllib's error: either may hold part of the password.
        shape = ("the ClickHouse URL must look like http[s]://user:password@host:8123/database, "
                 "with special characters in the user and password percent-encoded")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise StoreError(shape) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StoreError(shape)
        database = unquote(parts.path.strip("/")) or "default"
        if "/" in database:
            raise StoreError(f"the ClickHouse URL path must be one database name, got {database!r}")
        secure = parts.scheme == "https"
        return cls(
            secure=secure,
            host=parts.hostname,
            port=port or (8443 if secure else 8123),
            username=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            database=database,
        )


class ClickHouseBackend:
    name = "clickhouse"

    def __init__(self, url: str, *, cluster: str | None = None, query_timeout_s: float = 30.0,
                 connect_timeout: int = 10) -> None:
        try:
            import clickhouse_connect  # imported here: only the server tier installs it
        except ImportError as exc:
            raise StoreError("the ClickHouse backend needs clickhouse-connect: pip install 'llmlens[server]'") from exc
        self._connect = clickhouse_connect.get_client
        self.target = ClickHouseTarget.parse(url)
        self.cluster = cluster or None
        if self.cluster:
            try:
                check_cluster_name(self.cluster)
            except ValueError as exc:
                raise StoreError(str(exc)) from None
        self._query_timeout = float(query_timeout_s)
        # The HTTP read timeout outlasts the server's own limit, so the server's clear error arrives.
        self._timeouts = {"connect_timeout": connect_timeout,
                          "send_receive_timeout": max(300, math.ceil(self._query_timeout) + 30)}
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        with _quiet_driver_logs():
            self._create_database()
            self._client()  # connect now, so a wrong URL or password fails at start-up

    # --- the Backend protocol ----------------------------------------------------------------

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        client = self._client()
        settings = {**self._read_settings, "max_execution_time": self._query_timeout}
        self._call(lambda: client.command(sql, parameters=_params(params), settings=settings))

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        client = self._client()
        # One runaway query must not hold a reader forever (the chDB backend sets the same limit).
        settings = {**self._read_settings, "max_execution_time": self._query_timeout}
        data = self._call(lambda: client.raw_query(sql, parameters=_params(params), fmt="JSONEachRow",
                                                   settings=settings))
        return [orjson.loads(line) for line in data.splitlines() if line]

    def insert(self, table: str, data: pa.Table, dedup_token: str) -> None:
        client = self._client()
        settings = {**self._settings, **insert_settings(dedup_token)}
        if self.cluster:
            settings.update(_CLUSTER_INSERT_SETTINGS)
        self._call(lambda: client.insert_arrow(table, data, settings=settings))

    def disk_bytes(self) -> int:
        rows = self.fetch(disk_usage_sql(self.cluster))
        return int(rows[0]["b"] or 0) if rows else 0

    # A server's disk is its operator's: ClickHouse keeps its own free-space reserve and answers an
    # insert that does not fit with NOT_ENOUGH_SPACE, which insert_arrow raises (a StoreError here).
    def watch_free_space(self, min_free_bytes: int) -> None:
        return None

    def disk_problem(self) -> str | None:
        return None

    def close(self) -> None:
        with self._lock:
            clients, self._all = self._all, []
        for client in clients:
            with contextlib.suppress(Exception):  # closing is best effort at shutdown
                client.close()
        self._local = threading.local()

    # --- connections ---------------------------------------------------------------------------

    def _open(self, database: str) -> Any:
        t = self.target
        try:
            return self._connect(
                host=t.host, port=t.port, username=t.username, password=t.password, database=database,
                secure=t.secure, client_name="llmlens",
                # No HTTP sessions: a session serialises its queries and pins them to one node
                # behind a load balancer; nothing here relies on session state.
                autogenerate_session_id=False, **self._timeouts,
            )
        except Exception as exc:
            raise self._error(exc) from None

    def _create_database(self) -> None:
        if self.target.database == "default":
            return
        bootstrap = self._open("default")
        try:
            # Only when missing: on a cluster CREATE DATABASE runs ON CLUSTER (the schema's DDL names the
            # database on every host) and waits for every host, which must not hold up every start.
            found = self._call(lambda: bootstrap.raw_query(
                "SELECT name FROM system.databases WHERE name = {d:String}", parameters={"d": self.target.database},
                fmt="JSONEachRow"))
            if not found.strip():
                statement = create_database(Layout(cluster=self.cluster, database=self.target.database))
                self._call(lambda: bootstrap.command(statement))
        finally:
            with contextlib.suppress(Exception):
                bootstrap.close()

    def client(self) -> Any:
        """This thread's clickhouse-connect client (the read-only SQL interfaces send their own settings)."""
        return self._client()

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._open(self.target.database)
            self._local.client = client
            with self._lock:
                self._all.append(client)
        return client

    @property
    def _read_settings(self) -> dict[str, Any]:
        return {**self._settings, **_CLUSTER_READ_SETTINGS} if self.cluster else self._settings

    @property
    def _settings(self) -> dict[str, Any]:
        settings = dict(_JSON_SHAPE_SETTINGS)
        # chDB runs in UTC: render times and cut days (partitions, toDate) in UTC on any server.
        if "session_timezone" in (getattr(self._client(), "server_settings", None) or {}):
            settings["session_timezone"] = "UTC"
        return settings

    # --- errors --------------------------------------------------------------------------------

    def _call(self, action: Any) -> Any:
        try:
            return action()
        except StoreError:
            raise
        except Exception as exc:
            raise self._error(exc) from None

    def _error(self, exc: Exception) -> StoreError:
        """clickhouse-connect's exception -> one clear line, never with the password in it."""
        from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

        where = self.target.address
        code = getattr(exc, "code", None)
        text = _server_message(str(exc))
        if self.target.password:
            text = text.replace(self.target.password, "***")
        if code == _AUTHENTICATION_FAILED:
            return StoreError(f"ClickHouse at {where} refused user {self.target.username!r}: {text}")
        if code == _TIMEOUT_EXCEEDED:
            return QueryTimeout(f"the query ran past its {self._query_timeout:g} s limit")
        if code == _CLUSTER_DOESNT_EXIST and self.cluster:
            return StoreError(f"ClickHouse at {where} has no cluster {self.cluster!r} in its <remote_servers> "
                              "(SELECT DISTINCT cluster FROM system.clusters lists those it has)")
        if code == _UNKNOWN_DATABASE:
            return StoreError(f"ClickHouse at {where}: {text}")
        if isinstance(exc, OperationalError) and code is None:
            return StoreError(f"cannot reach ClickHouse at {where}: {_network_reason(text)}")
        if isinstance(exc, DatabaseError):
            return StoreError(f"ClickHouse at {where}: {text}")
        return StoreError(f"ClickHouse at {where}: {type(exc).__name__}: {text}")


def disk_usage_sql(cluster: str | None) -> str:
    """Bytes of the database's active parts. On a cluster, of every copy on every host (a host that
    does not answer is left out rather than failing /api/v1/status)."""
    where = "WHERE active AND database = currentDatabase()"
    if not cluster:
        return f"SELECT sum(bytes_on_disk) AS b FROM system.parts {where}"
    return (f"SELECT sum(bytes_on_disk) AS b FROM clusterAllReplicas({string_literal(cluster)}, system.parts) {where} "
            "SETTINGS skip_unavailable_shards = 1")


@contextlib.contextmanager
def _quiet_driver_logs() -> Iterator[None]:
    """At start-up a failed connection becomes our one-line error; urllib3's and the driver's
    warnings about the same failure would only bury it."""
    loggers = [logging.getLogger(name) for name in ("urllib3.connectionpool", "clickhouse_connect")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Values as the chDB backend sends them; clickhouse-connect escapes strings for the server."""
    if not params:
        return None
    return {k: (int(v) if isinstance(v, bool) else v) for k, v in params.items()}


def _server_message(text: str) -> str:
    """clickhouse-connect wraps the server's `Code: N. DB::Exception: ...` in its own words."""
    marker = "server response: "
    if marker in text:
        text = text.split(marker, 1)[1]
    text = text.split(" (for url ", 1)[0].split(" (version ", 1)[0]
    return text.strip().split("\n", 1)[0][:2000]


def _network_reason(text: str) -> str:
    """urllib3's retry message -> its root cause, e.g. "[Errno 111] Connection refused"."""
    text = text.split(" executing HTTP request", 1)[0]
    errno = re.search(r"\[Errno -?\d+\][^\"')]*", text)
    if errno:
        return errno.group(0).strip()
    if "Caused by " in text:
        text = text.rsplit("Caused by ", 1)[1]
    return text.strip("()\"' ")[:500]
