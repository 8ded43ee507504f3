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
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmlens.server.errors import StoreError
from llmlens.server.normalise import build_cost_model
from llmlens.server.receive.workers import build_batch
from llmlens.server.store import Store
from llmlens.server.store.chdb_backend import ChdbBackend
from llmlens.server.store.insert_check import _NEW_PARTS
from tests.integration.otlp_requests import (
    fetch_all_traces,
    make_span,
    new_trace_id,
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


def stored_spans(backend: ChdbBackend) -> int:
    return int(backend.fetch("SELECT count() AS c FROM otel_traces")[0]["c"])


def test_an_insert_that_cannot_write_its_part_raises_and_its_retry_stores_it_once(disk: Path) -> None:
    """chDB's streaming insert returns normally when the disk is full; the backend raises instead, and
    the retry with the same token (the writer's) stores the rows once when space is back."""
    backend = ChdbBackend(disk / "data")
    store = Store(backend)
    try:
        backend.insert("otel_traces", otel_traces_block(50), "first")
        block = otel_traces_block(SPANS)
        filler = fill(disk, 200 * 1024)
        with pytest.raises(StoreError, match=f"reported success but 0 of its {SPANS} rows are stored"):
            backend.insert("otel_traces", block, "second")
        assert stored_spans(backend) == 50
        filler.unlink()
        backend.insert("otel_traces", block, "second")
        backend.insert("otel_traces", block, "second")  # confirmed before: not inserted again
        assert stored_spans(backend) == 50 + SPANS
    finally:
        store.close()


def test_a_stored_block_whose_check_failed_is_recognised_on_retry(disk: Path, monkeypatch) -> None:
    """The rows landed but the check's query failed (injected: chDB cannot be made to fail a query on
    demand); the retry is dropped by the engine as a duplicate, and the check still finds the part."""
    backend = ChdbBackend(disk / "data")
    store = Store(backend)
    try:
        real_fetch = backend.fetch
        failed = []

        def fetch_failing_once(sql, params=None):
            if sql == _NEW_PARTS and not failed:
                failed.append(sql)
                raise StoreError("injected: the check's query failed")
            return real_fetch(sql, params)

        monkeypatch.setattr(backend, "fetch", fetch_failing_once)
        block = otel_traces_block(300)
        with pytest.raises(StoreError, match="injected"):
            backend.insert("otel_traces", block, "landed")
        assert stored_spans(backend) == 300  # it did land
        backend.insert("otel_traces", block, "landed")  # deduplicated by the engine, confirmed by the check
        assert stored_spans(backend) == 300
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
