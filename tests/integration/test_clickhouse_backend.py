"""llmlens on a ClickHouse server: the ClickHouse backend against the embedded one.

No modern ClickHouse server installs here, so the server side is tests/chdb_http_endpoint.py:
ClickHouse's HTTP interface in front of chDB (the ClickHouse engine), in its own process.
What is real: the clickhouse-connect HTTP client, loopback HTTP, ClickHouse SQL, our DDL and
queries, `llmlens serve` as a process. What is not: a ClickHouse server's own HTTP handler,
sessions, clusters and replication (see the endpoint's docstring).

The reference answers come from the embedded chDB backend in a separate process (chDB allows
one data directory per process), fed the same corpus bodies and asked the same queries.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import multiprocessing
import os
import re
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pyarrow as pa
import pytest

from tests.server_process import ServerProcess, free_port

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "fixtures" / "otlp"
# The corpus was captured in November 2026: keep it inside the TTL for ten years (DateTime ends
# in 2106, so a retention reaching past it would wrap around and drop everything at once).
RETENTION_DAYS = 3650
# A password URL-quoting must survive, and that must never appear in any output.
PASSWORD = "p@ss:w/rd-7f3a"
USER = "llmlens_test"
_SIGNAL_PATH = {"traces": "/v1/traces", "logs": "/v1/logs", "metrics": "/v1/metrics"}
_CONTENT_TYPE = {"pb": "application/x-protobuf", "json": "application/json"}


# --- the stand-in ClickHouse server ----------------------------------------------------------------

class Endpoint:
    def __init__(self, data_dir: Path) -> None:
        self.log_path = data_dir.parent / "endpoint.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 -- kept open for the process's life
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.chdb_http_endpoint", "--port", "0", "--data-dir", str(data_dir),
             "--user", USER, "--password", PASSWORD],
            cwd=REPO, stdout=subprocess.PIPE, stderr=self._log,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"endpoint did not start: {line!r}\n{self.log_path.read_text(errors='replace')}")
        self.address = line.split()[-1]

    def url(self, database: str, password: str = PASSWORD) -> str:
        return f"http://{USER}:{quote(password, safe='')}@{self.address}/{database}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self._log.close()


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    server = Endpoint(tmp_path_factory.mktemp("clickhouse") / "data")
    yield server
    server.stop()


# --- the same corpus and queries on either backend -----------------------------------------------

def corpus_bodies(formats: tuple[str, ...], signals: tuple[str, ...] = tuple(_SIGNAL_PATH)
                  ) -> list[tuple[str, str, bytes]]:
    """(signal, format, body) of every corpus file in the given formats, in a fixed order."""
    bodies = []
    for path in sorted(CORPUS.glob("*/*.*.*")):
        case, signal, fmt = path.name.split(".")
        if signal in signals and fmt in formats:
            bodies.append((signal, fmt, path.read_bytes()))
    return bodies


def expected_span_count(formats: tuple[str, ...]) -> int:
    total = 0
    for expected in sorted(CORPUS.glob("*/EXPECTED.json")):
        cases = orjson.loads(expected.read_bytes())["cases"]
        for case, facts in cases.items():
            present = [f for f in formats if (expected.parent / f"{case}.traces.{f}").exists()]
            total += facts["expected"]["span_count"] * len(present)
    return total


def _stable(value: Any) -> Any:
    """Floats to 12 significant digits: parallel sums may add in another order (last-bit noise)."""
    if isinstance(value, float):
        return float(f"{value:.12g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _sorted_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(_stable(rows), key=lambda row: orjson.dumps(row, option=orjson.OPT_SORT_KEYS))


def score_block(rows: int, name: str) -> pa.Table:
    """An llm_scores block, as the writer would insert it."""
    return pa.table({
        "Timestamp": pa.array([1_795_385_800_000_000_000 + i for i in range(rows)], pa.timestamp("ns")),
        "TraceId": [f"{i:032x}" for i in range(rows)], "SpanId": [f"{i:016x}" for i in range(rows)],
        "ServiceName": ["svc"] * rows, "App": ["app"] * rows, "Name": [name] * rows,
        "Value": pa.array([i / 3 for i in range(rows)], pa.float64()), "Label": ["ok"] * rows,
        "Comment": ["tab\there, quote ' and newline\n"] * rows, "Source": ["test"] * rows,
    })


def run_scenario(kind: str, where: str) -> dict[str, Any]:
    """Migrate, ingest the corpus, query: everything the two backends must answer alike."""
    from llmlens.server.store import Store

    if kind == "chdb":
        from llmlens.server.store.chdb_backend import ChdbBackend

        backend: Any = ChdbBackend(where)
    else:
        from llmlens.server.store.clickhouse_backend import ClickHouseBackend

        backend = ClickHouseBackend(where)
    store = Store(backend, ttl_days=RETENTION_DAYS)
    try:
        return asyncio.run(_scenario(store))
    finally:
        store.close()


async def _scenario(store: Any) -> dict[str, Any]:
    from llmlens.server.normalise import CostModel
    from llmlens.server.query.stats import llm_stats
    from llmlens.server.query.traces import TraceFilters, get_trace, list_traces
    from llmlens.server.query.window import Window
    from llmlens.server.receive.pipeline import Ingestor
    from llmlens.server.store.schema import migrate

    out: dict[str, Any] = {"schema_version": store.schema_version}
    out["migrate_again"] = migrate(store.backend, RETENTION_DAYS)
    out["migrations"] = await store.fetch("SELECT Version, Name FROM llmlens_schema_migrations ORDER BY Version")

    ingestor = Ingestor(store, CostModel(price=lambda facts: (facts.input_tokens or 0) * 1e-7))
    for kind, _fmt, body in corpus_bodies(("pb",)):
        await ingestor.ingest(kind, body, "protobuf")
    out["counts"] = await store.counts()
    for table in ("otel_traces", "llm_calls", "otel_logs", "otel_metrics_sum", "otel_metrics_histogram",
                  "otel_metrics_gauge", "otel_traces_trace_id_ts"):
        out[table] = _sorted_rows(await store.fetch(f"SELECT * FROM {table}"))
    out["trace_index"] = _stable(await store.fetch(
        "SELECT TraceId, min(Start) AS s, max(End) AS e, sum(SpanCount) AS n, sum(LlmCalls) AS calls, "
        "sum(CostUsd) AS cost FROM trace_index "
        "GROUP BY TraceId ORDER BY TraceId"))

    bounds = (await store.fetch("SELECT min(Timestamp) AS lo, max(Timestamp) AS hi FROM otel_traces"))[0]
    lo = datetime.fromisoformat(bounds["lo"][:26]).replace(tzinfo=UTC)
    hi = datetime.fromisoformat(bounds["hi"][:26]).replace(tzinfo=UTC)
    window = Window(lo - timedelta(hours=1), hi + timedelta(hours=1))
    traces = await list_traces(store, window, TraceFilters(), 1000)
    out["traces"] = _stable(traces)
    out["trace_details"] = [_stable(await get_trace(store, item["trace_id"])) for item in traces["items"]]
    out["stats_by_model"] = _stable(await llm_stats(store, window, ["model"], None, {}))
    out["stats_per_minute"] = _stable(await llm_stats(store, window, ["provider"], 60, {}))
    out["params"] = await store.fetch(
        "SELECT {s:String} AS s, {n:UInt32} AS n, {f:Float64} AS f, {b:UInt8} AS b, {t:DateTime64(9)} AS t",
        {"s": "tab\t nl\n cr\r bs\\ q' bq` \\N", "n": 7, "f": 0.25, "b": True, "t": "1795385800.123456789"})

    # A block retried with its token is stored once; a new token stores it again.
    score_rows = []
    for token in ("retry-token-1", "retry-token-1", "retry-token-2"):
        store.backend.insert("llm_scores", score_block(5, "dedup"), token)
        score_rows.append((await store.fetch("SELECT count() AS c FROM llm_scores WHERE Name = 'dedup'"))[0]["c"])
    out["dedup_counts"] = score_rows
    out["scores"] = _sorted_rows(await store.fetch("SELECT * FROM llm_scores"))
    out["disk_bytes_positive"] = store.backend.disk_bytes() > 0
    return out


@pytest.fixture(scope="module")
def reference_future(tmp_path_factory: pytest.TempPathFactory) -> Iterator[concurrent.futures.Future]:
    """The embedded backend's answers, computed in a fresh process (one chDB engine per process),
    started first so that it runs while the ClickHouse side does."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        yield pool.submit(run_scenario, "chdb", str(tmp_path_factory.mktemp("chdb_ref") / "data"))


@pytest.fixture(scope="module")
def on_clickhouse(endpoint: Endpoint, reference_future: concurrent.futures.Future) -> dict[str, Any]:
    return run_scenario("clickhouse", endpoint.url("llmlens_unit"))


@pytest.fixture(scope="module")
def reference(reference_future: concurrent.futures.Future) -> dict[str, Any]:
    return reference_future.result(120)


# --- (a) the backend itself --------------------------------------------------------------------------

def test_migrations_run_once_and_are_recorded(on_clickhouse: dict[str, Any]) -> None:
    assert on_clickhouse["schema_version"] >= 1
    assert on_clickhouse["migrate_again"] == on_clickhouse["schema_version"]
    versions = [row["Version"] for row in on_clickhouse["migrations"]]
    assert versions == sorted(set(versions)) and versions[-1] == on_clickhouse["schema_version"]


def test_corpus_is_stored_completely(on_clickhouse: dict[str, Any]) -> None:
    assert on_clickhouse["counts"]["spans"] == expected_span_count(("pb",))
    assert on_clickhouse["counts"]["logs"] > 0 and on_clickhouse["counts"]["metric_points"] > 0
    assert on_clickhouse["llm_calls"], "no LLM call was normalised"
    assert len(on_clickhouse["traces"]["items"]) == len(on_clickhouse["trace_index"])


def test_retried_block_is_not_duplicated(on_clickhouse: dict[str, Any]) -> None:
    assert on_clickhouse["dedup_counts"] == [5, 5, 10]


def test_parameters_are_bound_on_the_server_exactly(on_clickhouse: dict[str, Any]) -> None:
    assert on_clickhouse["params"] == [{"s": "tab\t nl\n cr\r bs\\ q' bq` \\N", "n": 7, "f": 0.25, "b": 1,
                                        "t": "2026-11-22 22:16:40.123456789"}]


@pytest.mark.parametrize("key", [
    "schema_version", "migrations", "counts", "otel_traces", "llm_calls", "otel_logs", "otel_metrics_sum",
    "otel_metrics_histogram", "otel_metrics_gauge", "otel_traces_trace_id_ts", "trace_index", "traces",
    "trace_details", "stats_by_model", "stats_per_minute", "params", "dedup_counts", "scores",
    "disk_bytes_positive",
])
def test_answers_equal_the_embedded_backend(key: str, on_clickhouse: dict[str, Any],
                                             reference: dict[str, Any]) -> None:
    assert on_clickhouse[key] == reference[key]


def test_readers_and_writer_in_threads(endpoint: Endpoint, on_clickhouse: dict[str, Any]) -> None:
    """The store's shape: one writer thread, several readers, one backend object."""
    from llmlens.server.store.clickhouse_backend import ClickHouseBackend

    backend = ClickHouseBackend(endpoint.url("llmlens_unit"))
    errors: list[BaseException] = []
    seen: list[int] = []

    def read() -> None:
        try:
            for _ in range(15):
                rows = backend.fetch("SELECT count() AS c FROM llm_scores WHERE Name = {n:String}", {"n": "threads"})
                seen.append(rows[0]["c"])
        except BaseException as exc:  # noqa: BLE001 -- collected and asserted on below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    for i in range(8):
        backend.insert("llm_scores", score_block(2, "threads"), f"threads-{i}")
    for thread in readers:
        thread.join(60)
    final = backend.fetch("SELECT count() AS c FROM llm_scores WHERE Name = 'threads'")[0]["c"]
    backend.close()
    assert not errors, errors
    assert final == 16
    assert all(0 <= c <= 16 and c % 2 == 0 for c in seen)  # whole blocks only


def test_clear_errors(endpoint: Endpoint) -> None:
    from llmlens.server.errors import QueryTimeout, StoreError
    from llmlens.server.store.clickhouse_backend import ClickHouseBackend

    with pytest.raises(StoreError) as wrong_password:
        ClickHouseBackend(endpoint.url("llmlens_unit", password="not-the-password"))
    assert f"refused user '{USER}'" in str(wrong_password.value)
    assert "AUTHENTICATION_FAILED" in str(wrong_password.value)
    assert "not-the-password" not in str(wrong_password.value)

    backend = ClickHouseBackend(endpoint.url("llmlens_unit"))
    with pytest.raises(StoreError, match=r"Code: 60\. .*no_such_table"):
        backend.fetch("SELECT * FROM no_such_table")
    backend.close()

    slow = ClickHouseBackend(endpoint.url("llmlens_unit"), query_timeout_s=0.5)
    with pytest.raises(QueryTimeout, match=r"ran past its 0\.5 s limit"):
        slow.fetch("SELECT count() AS c FROM numbers(100000000000)")  # ~100 s of work without the limit
    slow.close()

    port = free_port()
    with pytest.raises(StoreError, match=rf"^cannot reach ClickHouse at 127\.0\.0\.1:{port}: .*refused"):
        ClickHouseBackend(f"http://u:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/db")

    with pytest.raises(StoreError, match="percent-encoded") as unquoted:
        ClickHouseBackend(f"http://u:{PASSWORD}@127.0.0.1:{port}/db")  # ':' and '/' in it: not a URL
    assert "w/rd" not in str(unquoted.value)


# --- (b) `llmlens serve --clickhouse-url` end to end ------------------------------------------------

def _post_corpus(server: ServerProcess, bodies: list[tuple[str, str, bytes]]) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for signal, fmt, body in bodies:
            response = client.post(_SIGNAL_PATH[signal], content=body, headers={"Content-Type": _CONTENT_TYPE[fmt]})
            assert response.status_code == 200, response.text


def _api_answers(server: ServerProcess, window: dict[str, str]) -> dict[str, Any]:
    status = server.status()
    traces = server.get("/api/v1/traces", limit=1000, **window).json()
    return {
        "counts": {k: status[k] for k in ("spans", "logs", "metric_points")},
        "schema_version": status["schema_version"],
        "traces": _stable(traces),
        "details": [_stable(server.get(f"/api/v1/traces/{t['trace_id']}").json()) for t in traces["items"]],
        "stats": _stable(server.get("/api/v1/llm/stats", group_by="model", **window).json()),
        "stats_per_minute": _stable(server.get("/api/v1/llm/stats", group_by="provider", step="1m", **window).json()),
    }


def _corpus_window() -> dict[str, str]:
    """A time range around the corpus spans (they carry their capture time)."""
    times = [int(t) for path in CORPUS.glob("*/*.traces.json")
             for t in re.findall(rb'"startTimeUnixNano":\s*"?(\d+)', path.read_bytes())]
    lo = datetime.fromtimestamp(min(times) / 1e9, UTC) - timedelta(days=1)
    hi = datetime.fromtimestamp(max(times) / 1e9, UTC) + timedelta(days=1)
    return {"start": lo.isoformat(), "end": hi.isoformat()}


def test_serve_on_clickhouse_answers_like_the_embedded_server(endpoint: Endpoint, tmp_path: Path) -> None:
    # The backend tests above store every protobuf body (metrics too); here the JSON traces and logs.
    bodies = corpus_bodies(("json",), ("traces", "logs"))
    common = ["--retention-days", str(RETENTION_DAYS)]
    on_clickhouse = ServerProcess(tmp_path / "unused", extra_args=[
        *common, "--clickhouse-url", endpoint.url("llmlens_e2e")])
    embedded = ServerProcess(tmp_path / "chdb", extra_args=common)
    servers = (on_clickhouse, embedded)
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:  # two cores: start and feed both at once
            list(pool.map(lambda server: server.start(), servers))
            list(pool.map(lambda server: _post_corpus(server, bodies), servers))
        assert (on_clickhouse.status()["backend"], embedded.status()["backend"]) == ("clickhouse", "chdb")
        window = _corpus_window()
        got, want = _api_answers(on_clickhouse, window), _api_answers(embedded, window)
    finally:
        codes = [server.terminate() if server.proc and server.proc.poll() is None else None for server in servers]
    assert got["counts"]["spans"] == expected_span_count(("json",))
    assert got["traces"]["items"] and all(d.get("spans") for d in got["details"])
    assert {"gpt-4o-mini", "text-embedding-3-small"} <= {g["model"] for g in got["stats"]["groups"]}
    for key in want:
        assert got[key] == want[key], key
    # Shut down as the embedded server does (uvicorn re-raises SIGTERM after a graceful stop).
    assert codes[0] == codes[1] and codes[0] in (0, -signal.SIGTERM)
    log = on_clickhouse.log()
    assert PASSWORD not in log and quote(PASSWORD, safe="") not in log
    assert "Traceback" not in log


def test_serve_exits_clearly_when_clickhouse_is_unreachable(tmp_path: Path) -> None:
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "llmlens.cli", "serve", "--data-dir", str(tmp_path / "d"),
         "--http-port", str(free_port()), "--grpc-port", str(free_port()),
         "--clickhouse-url", f"http://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/llmlens"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"llmlens: error: cannot reach ClickHouse at 127.0.0.1:{port}: ")
    assert "urllib3" not in output and "clickhouse_connect" not in output  # one line, not the driver's noise
    assert "Traceback" not in output
    assert PASSWORD not in output and quote(PASSWORD, safe="") not in output
