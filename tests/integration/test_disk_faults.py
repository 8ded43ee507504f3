"""A full or read-only disk never costs an acknowledged export: on a real 50 MB tmpfs and a real
read-only remount, every insert that cannot write its part fails visibly (503 + Retry-After, gRPC
UNAVAILABLE), /readyz says not ready below the free-space floor, the outage is logged once, and the
server takes exports again by itself when space returns; every export answered 2xx is stored.

Mounting needs root (CAP_SYS_ADMIN); where it cannot, the tests skip and say so.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from llmlens.server.errors import StoreError
from llmlens.server.normalise import build_cost_model
from llmlens.server.receive.workers import build_batch
from llmlens.server.store import Store
from llmlens.server.store.chdb_backend import ChdbBackend
from llmlens.server.store.insert_check import InsertCheck
from tests.integration.otlp_requests import (
    export_response,
    fetch_all_traces,
    make_span,
    new_trace_id,
    post,
    trace_request,
)
from tests.server_process import ServerProcess

MB = 1024 * 1024
SPANS = 2000
SERVICE = "diskfaults"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=False)


@contextlib.contextmanager
def mounted_tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = _run("mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a {size_mb} MB tmpfs here (needs root or CAP_SYS_ADMIN): "
                    f"{(done.stderr or done.stdout).strip()}")
    try:
        yield path
    finally:
        if _run("umount", str(path)).returncode != 0:
            _run("umount", "-l", str(path))


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A real 50 MB file system (tmpfs), unmounted at the end."""
    with mounted_tmpfs(tmp_path / "disk", 50) as path:
        yield path


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(disk: Path, leave_bytes: int) -> Path:
    """Take the disk's space down to `leave_bytes` free with a filler file; returns it."""
    filler = disk / "filler"
    size = (filler.stat().st_size if filler.exists() else 0) + free_bytes(disk) - leave_bytes
    with open(filler, "ab") as fh:
        os.posix_fallocate(fh.fileno(), 0, max(size, 1))
    assert abs(free_bytes(disk) - leave_bytes) < MB, free_bytes(disk)
    return filler


def span_request(tag: str, count: int = SPANS) -> tuple[object, str]:
    """One export of `count` spans of one trace, each with 600 random (incompressible) characters."""
    trace_id = new_trace_id()
    spans = [make_span(f"{tag}-{i}", trace_id=trace_id, attrs={"payload": os.urandom(300).hex()})
             for i in range(count)]
    return trace_request(spans, service=SERVICE), trace_id.hex()


def stored_span_counts(server: ServerProcess) -> dict[str, int]:
    return {t["trace_id"]: t["span_count"]
            for t in fetch_all_traces(server.url, {"start": "-2h", "service": SERVICE}, page_size=1000)}


# --- in process: the insert check itself ----------------------------------------------------------

def otel_traces_block(count: int):
    request, _ = span_request("block", count)
    return build_batch("traces", request.SerializeToString(), "protobuf", build_cost_model()).arrow["otel_traces"]


def stored_spans(backend) -> int:
    return int(backend.fetch("SELECT count() AS c FROM otel_traces")[0]["c"])


@pytest.mark.parametrize("proof", ["part folder", "system.parts"])
def test_an_insert_that_cannot_write_its_part_raises_and_its_retry_stores_it_once(
        disk: Path, proof: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """chDB's streaming insert returns normally when the disk is full; the backend raises instead, and
    the retry with the same token (the writer's) stores the rows once when space is back. Both ways
    of proving an insert: its part's folder, and (without a folder to list) system.parts' rows."""
    if proof == "system.parts":
        monkeypatch.setattr(InsertCheck, "_parts_on_disk", lambda self, table: None)
    backend = ChdbBackend(disk / "data")
    store = Store(backend)
    try:
        backend.insert("otel_traces", otel_traces_block(50), "first")
        block = otel_traces_block(SPANS)
        filler = fill(disk, 200 * 1024)
        with pytest.raises(StoreError, match=f"reported success but (none|0) of its {SPANS} rows are stored"):
            backend.insert("otel_traces", block, "second")
        assert stored_spans(backend) == 50
        filler.unlink()
        backend.insert("otel_traces", block, "second")
        backend.insert("otel_traces", block, "second")  # confirmed before: not inserted again
        assert stored_spans(backend) == 50 + SPANS
    finally:
        store.close()


def test_a_stored_block_whose_check_failed_is_recognised_on_retry(disk: Path, monkeypatch) -> None:
    """The rows landed but the check failed (injected: chDB cannot be made to fail a listing or a
    query on demand); the retry is dropped by the engine as a duplicate, and the check still finds
    the part the first try made."""
    backend = ChdbBackend(disk / "data")
    store = Store(backend)
    try:
        real_listing = InsertCheck._new_blocks_on_disk
        failed = []

        def listing_failing_once(self, table, base, claimed):
            if not failed:
                failed.append(table)
                raise StoreError("injected: the check failed")
            return real_listing(self, table, base, claimed)

        monkeypatch.setattr(InsertCheck, "_new_blocks_on_disk", listing_failing_once)
        block = otel_traces_block(300)
        with pytest.raises(StoreError, match="injected"):
            backend.insert("otel_traces", block, "landed")
        assert stored_spans(backend) == 300  # it did land
        backend.insert("otel_traces", block, "landed")  # deduplicated by the engine, confirmed by the check
        assert stored_spans(backend) == 300
        backend.insert("otel_traces", otel_traces_block(7), "next")  # and the next insert is checked as usual
        assert stored_spans(backend) == 307
    finally:
        store.close()


def test_below_the_floor_inserts_are_refused_before_trying(disk: Path) -> None:
    backend = ChdbBackend(disk / "data")
    store = Store(backend)
    try:
        backend.watch_free_space(20 * MB)
        assert backend.disk_problem() is None
        filler = fill(disk, 12 * MB)
        problem = backend.disk_problem()
        assert problem is not None and "below the floor of 20 MiB (min_free_disk_mb)" in problem
        with pytest.raises(StoreError, match="below the floor") as refused:
            backend.insert("otel_traces", otel_traces_block(10), "refused")
        assert refused.value.retry_after == 10.0
        assert stored_spans(backend) == 0
        filler.unlink()
        backend.insert("otel_traces", otel_traces_block(10), "refused")
        assert stored_spans(backend) == 10
    finally:
        store.close()


def test_the_clickhouse_backend_raises_when_the_server_cannot_write(disk: Path) -> None:
    """The server backend needs no check of its own: a ClickHouse server answers an insert that does
    not fit with NOT_ENOUGH_SPACE, which becomes a StoreError (503). Here the stand-in server of the
    ClickHouse tests (chDB behind ClickHouse's HTTP interface) keeps its data on the full disk."""
    from llmlens.server.store.clickhouse_backend import ClickHouseBackend
    from tests.integration.test_clickhouse_backend import Endpoint

    endpoint = Endpoint(disk / "clickhouse")
    backend = None
    try:
        backend = ClickHouseBackend(endpoint.url("diskfull"))
        store = Store(backend)
        assert backend.disk_problem() is None  # the server's disk is its operator's to watch
        block = otel_traces_block(SPANS)
        filler = fill(disk, 200 * 1024)
        with pytest.raises(StoreError, match="NOT_ENOUGH_SPACE|not enough space|No space left"):
            backend.insert("otel_traces", block, "full")
        filler.unlink()
        backend.insert("otel_traces", block, "full")
        assert stored_spans(backend) == SPANS
        store.close()
    finally:
        if backend is not None:
            backend.close()
        endpoint.stop()


# --- a real server ---------------------------------------------------------------------------------

@pytest.fixture
def server_on(tmp_path: Path) -> Iterator:
    """Start a server whose data directory is on a given disk; killed at the end, before unmounting."""
    servers: list[ServerProcess] = []

    def start(data_dir: Path, *args: str) -> ServerProcess:
        server = ServerProcess(data_dir, extra_args=list(args))
        server.log_path = tmp_path / f"server-{len(servers)}.log"  # not on the disk the test fills
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.kill()


def export(server: ServerProcess, request) -> httpx.Response:
    return post(server.url, "traces", request, timeout=120)


def assert_refused_retryably(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text[:300]
    assert int(answer.headers["retry-after"]) >= 1


def test_full_disk_answers_503_and_loses_no_acknowledged_span(disk: Path, server_on) -> None:
    """No floor (0): only the check of each insert stands between a full disk and silent loss. Exports
    of 2,000 spans to a disk filled to 12 MB free: those answered 200 are all stored, the rest get 503
    with Retry-After; once space returns the same server process takes exports again."""
    server = server_on(disk / "data", "--min-free-disk-mb", "0")
    acknowledged: list[str] = []
    request, trace_id = span_request("before")
    assert export(server, request).status_code == 200
    acknowledged.append(trace_id)

    filler = fill(disk, 12 * MB)
    refused = 0
    for i in range(30):
        request, trace_id = span_request(f"full-{i}")
        answer = export(server, request)
        if answer.status_code == 200:
            assert not export_response("traces", answer).partial_success.rejected_spans
            acknowledged.append(trace_id)
        else:
            assert_refused_retryably(answer)
            refused += 1
            if refused == 3:
                break
    assert refused == 3, "30 exports to a disk with 12 MB free all got 200: rows lost without an error?"

    filler.unlink()
    deadline = time.monotonic() + 60
    while True:  # the first commit after the outage also finishes the one that failed part-way
        request, trace_id = span_request("after")
        answer = export(server, request)
        if answer.status_code == 200:
            acknowledged.append(trace_id)
            break
        assert time.monotonic() < deadline, f"still refused after space returned: {answer.text[:300]}"
        time.sleep(1)

    stored = stored_span_counts(server)
    lost = [t for t in acknowledged if stored.get(t) != SPANS]
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged exports are not stored whole"
    log = server.log()
    assert log.count("inserts into the embedded store fail: ") == 1, log[-3000:]
    assert log.count("inserts into the embedded store succeed again after") == 1, log[-3000:]


def test_below_the_floor_exports_are_refused_and_readyz_says_why(disk: Path, server_on) -> None:
    """With min_free_disk_mb 20 and 12 MB free: /readyz 503 with the reason, OTLP/HTTP 503 +
    Retry-After, OTLP/gRPC UNAVAILABLE, nothing inserted; once space returns, ready and accepting."""
    server = server_on(disk / "data", "--min-free-disk-mb", "20")
    filler = fill(disk, 12 * MB)
    ready = server.get("/readyz")
    assert ready.status_code == 503 and "below the floor of 20 MiB (min_free_disk_mb)" in ready.json()["reason"]
    request, refused_trace = span_request("refused", 100)
    answer = export(server, request)
    assert_refused_retryably(answer)
    assert int(answer.headers["retry-after"]) == 10  # a disk outage's; the body does not show internals
    with grpc.insecure_channel(server.grpc_target) as channel, pytest.raises(grpc.RpcError) as failed:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=60)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert server.status()["spans"] == 0

    filler.unlink()
    assert server.get("/readyz").status_code == 200
    request, trace_id = span_request("accepted", 100)
    assert export(server, request).status_code == 200
    # The refused commit is finished before the next one (the writer's all-or-nothing rule), so the
    # refused export may be stored now; its resends would be dropped as repeats. Never in part.
    stored = stored_span_counts(server)
    assert stored[trace_id] == 100 and set(stored) <= {trace_id, refused_trace}
    assert stored.get(refused_trace, 100) == 100
    log = server.log()
    assert log.count("the store refuses writes: ") == 1, log[-3000:]
    assert log.count("the store takes writes again after") == 1, log[-3000:]


def remount(path: Path, mode: str) -> None:
    """A bind mount's read-only flag; retried while a part being written keeps a file open there."""
    for _ in range(50):
        done = _run("mount", "-o", f"remount,bind,{mode}", str(path))
        if done.returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"cannot remount {path} {mode}: {done.stderr}")


def test_read_only_data_directory_answers_503_and_recovers(tmp_path: Path, server_on) -> None:
    """The tables' folder made read-only while the server runs (a bind mount remounted ro: chmod does
    not stop root, and the whole tmpfs cannot be remounted ro while chDB holds its lock file open):
    exports get 503, /readyz says not ready, and after the remount rw everything acknowledged is there."""
    with mounted_tmpfs(tmp_path / "disk", 200) as disk:
        server = server_on(disk / "data", "--min-free-disk-mb", "0")
        tables = disk / "data" / "store"
        request, first = span_request("before", 500)
        assert export(server, request).status_code == 200
        done = _run("mount", "--bind", str(tables), str(tables))
        assert done.returncode == 0, done.stderr
        try:
            remount(tables, "ro")
            request, refused = span_request("read-only", 500)
            answer = export(server, request)
            assert_refused_retryably(answer)
            ready = server.get("/readyz")
            assert ready.status_code == 503 and ready.json()["reason"] == "the data directory is on a read-only file system"
            remount(tables, "rw")
            assert server.get("/readyz").status_code == 200
            request, second = span_request("after", 500)
            assert export(server, request).status_code == 200
            stored = stored_span_counts(server)  # the refused export may be stored by now, never in part
            assert stored[first] == stored[second] == 500 and set(stored) <= {first, second, refused}
            assert stored.get(refused, 500) == 500
        finally:
            server.kill()
            if _run("umount", str(tables)).returncode != 0:
                _run("umount", "-l", str(tables))
