"""`llmlens serve --ingest-wal` on real server processes: an export acknowledged from the write-ahead
log and not yet inserted survives a kill -9 (the restart replays it before it is ready), is stored
once, and a resend after the restart is a repeat; a record torn by the crash is dropped; data is
queryable after the flush. (The kill -9, SIGTERM and full-disk tests of test_durability.py and
test_disk_faults.py also pass with LLMLENS_INGEST_WAL=1.)"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import NumberDataPoint

from llmlens.server.receive.wal_service import FOLDER
from tests.integration.otlp_requests import (
    llm_attrs,
    log_request,
    make_log,
    make_span,
    metrics_request,
    post,
    trace_request,
)
from tests.integration.test_disk_faults import (
    MB,
    SPANS,
    assert_refused_retryably,
    fill,
    mounted_tmpfs,
    span_request,
    stored_span_counts,
)
from tests.integration.test_durability import SPANS_PER_BATCH, assert_all_present, batch
from tests.server_process import ServerProcess

NEVER = ["--ingest-wal", "--ingest-wal-flush-s", "60"]  # nothing is flushed while the test runs


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def started(data_dir: Path) -> Iterator[Callable[..., ServerProcess]]:
    servers: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        servers.append(ServerProcess(data_dir, extra_args=list(args)).start())
        return servers[-1]

    yield start
    for server in servers:
        server.kill()


def segments(data_dir: Path) -> list[Path]:
    return sorted((data_dir / FOLDER).glob("*.wal"))


def llm_stats(server: ServerProcess) -> dict:
    stats = server.get("/api/v1/llm/stats", start="-2h").json()
    return {k: v for k, v in stats.items() if k not in ("start", "end")}


def test_kill_9_before_the_flush_loses_nothing_and_counts_once(started, data_dir: Path) -> None:
    server = started(*NEVER)
    requests, trace_ids = zip(*(batch(f"logged-{i}") for i in range(6)), strict=True)
    for request in requests:
        assert post(server.url, "traces", request).status_code == 200
    chat = trace_request([make_span("chat", attrs=llm_attrs("gpt-4o-mini", 120, 30))], service="wal-llm")
    assert post(server.url, "traces", chat).status_code == 200
    logs = log_request([make_log(f"logged line {i}") for i in range(7)])
    assert post(server.url, "logs", logs).status_code == 200
    metrics = metrics_request()
    gauge = metrics.resource_metrics[0].scope_metrics[0].metrics.add(name="logged.gauge", unit="1")
    gauge.gauge.data_points.extend(NumberDataPoint(time_unix_nano=time.time_ns() - i * 10**9, as_double=float(i))
                                   for i in range(5))
    assert post(server.url, "metrics", metrics).status_code == 200
    status = server.status()
    assert (status["spans"], status["logs"], status["metric_points"]) == (0, 0, 0)  # acknowledged, not inserted
    assert len(segments(data_dir)) == 1
    server.kill()

    restarted = started("--ingest-wal")
    status = restarted.status()  # replayed before ready
    assert (status["spans"], status["logs"], status["metric_points"]) == (6 * SPANS_PER_BATCH + 1, 7, 5)
    assert_all_present(restarted, list(trace_ids))
    calls = llm_stats(restarted)
    assert [g["requests"] for g in calls["groups"]] == [1], calls
    assert segments(data_dir) == []
    # The exporters never got an answer they trusted, say, and send everything again: all repeats.
    for request in (*requests, chat):
        assert post(restarted.url, "traces", request).status_code == 200
    assert post(restarted.url, "logs", logs).status_code == 200
    assert post(restarted.url, "metrics", metrics).status_code == 200
    time.sleep(3)  # two flushes
    status = restarted.status()
    assert (status["spans"], status["logs"], status["metric_points"]) == (6 * SPANS_PER_BATCH + 1, 7, 5)
    assert llm_stats(restarted) == calls


def test_a_record_torn_by_the_crash_is_dropped(started, data_dir: Path) -> None:
    server = started(*NEVER)
    request, trace_id = batch("whole")
    assert post(server.url, "traces", request).status_code == 200
    server.kill()
    segment = segments(data_dir)[0]
    whole = segment.read_bytes()
    # A second export being written when the process died: its record only part-way on disk.
    segment.write_bytes(whole + whole[: len(whole) // 2])

    restarted = started("--ingest-wal")
    assert restarted.status()["spans"] == SPANS_PER_BATCH
    assert_all_present(restarted, [trace_id])
    assert "torn record" in restarted.log()
    assert segments(data_dir) == []


def test_acknowledged_exports_are_queryable_after_the_flush(started) -> None:
    server = started("--ingest-wal", "--ingest-wal-flush-s", "0.5")
    request, trace_id = batch("soon")
    assert post(server.url, "traces", request).status_code == 200
    deadline = time.monotonic() + 10
    while server.get(f"/api/v1/traces/{trace_id}").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(server.get(f"/api/v1/traces/{trace_id}").json()["spans"]) == SPANS_PER_BATCH


@pytest.fixture
def disk_server(tmp_path: Path) -> Iterator[tuple[Path, ServerProcess]]:
    """A 50 MB tmpfs and a server with the log whose data directory is on it (no free-space floor)."""
    with mounted_tmpfs(tmp_path / "disk", 50) as disk:
        server = ServerProcess(disk / "data", extra_args=["--min-free-disk-mb", "0", "--ingest-wal"])
        server.log_path = tmp_path / "server.log"  # not on the disk the test fills
        try:
            yield disk, server.start()
        finally:
            server.kill()


def test_full_disk_answers_503_and_every_acknowledged_export_is_stored_once_space_returns(disk_server) -> None:
    """As test_disk_faults' full-disk test, with the log: no floor, a disk filled to 12 MB free. The log
    takes exports while it has room (their inserts fail and are retried), then refuses them (503 +
    Retry-After) when its own writes fail; once space returns every acknowledged export is inserted."""
    disk, server = disk_server
    acknowledged: list[str] = []
    filler = fill(disk, 12 * MB)
    refused = 0
    for i in range(30):
        request, trace_id = span_request(f"full-{i}")
        answer = post(server.url, "traces", request, timeout=120)
        if answer.status_code == 200:
            acknowledged.append(trace_id)
        else:
            assert_refused_retryably(answer)
            refused += 1
            if refused == 3:
                break
    assert refused == 3, "30 exports to a disk with 12 MB free all got 200"
    filler.unlink()
    request, trace_id = span_request("after")
    deadline = time.monotonic() + 60
    while (answer := post(server.url, "traces", request, timeout=120)).status_code != 200:
        assert time.monotonic() < deadline, f"still refused after space returned: {answer.text[:300]}"
        time.sleep(1)
    acknowledged.append(trace_id)
    deadline = time.monotonic() + 60
    while len(stored := stored_span_counts(server)) < len(acknowledged) and time.monotonic() < deadline:
        time.sleep(1)  # the log's retries come every few seconds
    lost = [t for t in acknowledged if stored.get(t) != SPANS]
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged exports are not stored whole"
    assert server.status()["spans"] == SPANS * len(acknowledged)  # and each once
    assert segments(disk / "data") == []
