"""The write-ahead log on a real embedded chDB: exports acknowledged once logged are inserted at the
flush, once; a segment whose insert failed part-way is replayed into the very blocks of its first
try, so every row is stored once (the calls of spans that had landed included); a torn record at the
end is dropped; a full log and a full disk refuse exports before writing anything."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from llmlens.server.errors import StoreError
from llmlens.server.normalise import build_cost_model
from llmlens.server.receive.workers import build_batch
from llmlens.server.store import Store, open_backend
from llmlens.server.store.disk import DiskFull
from llmlens.server.store.wal import LogFull, WriteAheadLog
from llmlens.server.store.writer import BatchWriter
from tests.integration.otlp_requests import log_request, make_log
from tests.unit.test_dedup import facts, llm_spans
from tests.unit.test_store import span_batch


@pytest.fixture
def store(tmp_path):
    s = Store(open_backend(data_dir=str(tmp_path / "data")))
    yield s
    s.close()


def segments(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.wal"))


def logged(wal: WriteAheadLog, batches) -> None:
    for future in [wal.append(b) for b in batches]:
        future.result(30)


def test_logged_exports_are_inserted_at_the_flush_and_the_segment_deleted(store, tmp_path):
    wal = WriteAheadLog(tmp_path / "wal", store.writer, flush_interval_s=0.3)
    wal.start()
    trace_ids = [uuid.uuid4().bytes for _ in range(3)]
    try:
        logged(wal, [span_batch(llm_spans(t, 2, time.time_ns())) for t in trace_ids])
        assert wal.stats.syncs >= 1 and wal.stats.bytes > 0
        deadline = time.monotonic() + 30
        while wal.stats.flushes == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        for trace_id in trace_ids:
            got = facts(store, trace_id)
            assert (got["spans"], got["calls"], got["index_spans"]) == (2, 2, 2)
        assert wal.stats.flushes == 1  # the three exports in one commit
        assert segments(tmp_path / "wal") == [] and wal.stats.bytes == 0
    finally:
        wal.close()


class CallsFail:
    """A backend whose llm_calls inserts fail: a flush stores its spans and stops part-way."""

    def __init__(self, real) -> None:
        self.real = real
        self.failing = True

    def __getattr__(self, name):
        return getattr(self.real, name)

    def insert(self, table, data, token):
        if table == "llm_calls" and self.failing:
            raise StoreError("not enough space on the disk")
        self.real.insert(table, data, token)


def test_a_segment_inserted_part_way_is_replayed_into_the_same_blocks(tmp_path):
    """The crash case: the flush stored the spans, not their calls, and the process died. The replay
    must not take the landed spans for an earlier export's (that would drop their calls for good)."""
    data = tmp_path / "data"
    store = Store(open_backend(data_dir=str(data)))
    flaky = CallsFail(store.backend)
    writer = BatchWriter(flaky, retries=0)
    wal = WriteAheadLog(tmp_path / "wal", writer, flush_interval_s=0.2)
    trace_id = uuid.uuid4().bytes
    tag = uuid.uuid4().hex
    logs = log_request([make_log(f"{tag} line {i}") for i in range(3)]).SerializeToString()
    try:
        wal.start()
        logged(wal, [span_batch(llm_spans(trace_id, 3, time.time_ns())),
                     build_batch("logs", logs, "protobuf", build_cost_model())])
        deadline = time.monotonic() + 30
        while wal.stats.flush_failures == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        wal.close(timeout=0.5)  # still failing: the segment stays for the next start
        assert segments(tmp_path / "wal") == ["000000000001.wal"]
        got = facts(store, trace_id)
        assert (got["spans"], got["calls"]) == (3, 0)  # part-way
    finally:
        writer.close()
        store.close()
    # The next start: a new process's store (no memory of confirmed inserts), the same log.
    store = Store(open_backend(data_dir=str(data)))
    try:
        replay = WriteAheadLog(tmp_path / "wal", store.writer)
        assert replay.replay() == 3 + 3 + 3  # the spans, their LLM calls and the log records
        got = facts(store, trace_id)
        assert (got["spans"], got["calls"], got["index_spans"], got["index_calls"]) == (3, 3, 3, 3)
        n = store.backend.fetch("SELECT count() AS n FROM otel_logs WHERE startsWith(Body, {t:String})", {"t": tag})
        assert int(n[0]["n"]) == 3
        assert segments(tmp_path / "wal") == []
        assert replay.replay() == 0  # nothing left: a second start replays nothing
    finally:
        store.close()


def test_a_torn_record_at_the_end_is_dropped_and_the_rest_replayed(store, tmp_path):
    folder = tmp_path / "wal"
    wal = WriteAheadLog(folder, store.writer, flush_interval_s=3600)
    wal.start()
    trace_ids = [uuid.uuid4().bytes for _ in range(2)]
    logged(wal, [span_batch(llm_spans(t, 2, time.time_ns())) for t in trace_ids])
    # The process dies while writing a third record (never acknowledged): only part of it is on disk.
    path = folder / "000000000001.wal"
    size = path.stat().st_size
    third = uuid.uuid4().bytes
    logged(wal, [span_batch(llm_spans(third, 2, time.time_ns()))])
    whole = path.read_bytes()
    path.write_bytes(whole[:size + (len(whole) - size) // 2])
    replay = WriteAheadLog(folder, store.writer)
    assert replay.replay() == 8  # two exports of 2 spans and 2 LLM calls
    assert replay.stats.torn_records == 1
    assert [facts(store, t)["spans"] for t in (*trace_ids, third)] == [2, 2, 0]
    assert segments(folder) == []
    assert WriteAheadLog(folder, store.writer)._next == 1  # numbering starts again in an empty folder


def test_a_full_log_refuses_exports_until_the_store_catches_up(store, tmp_path):
    wal = WriteAheadLog(tmp_path / "wal", store.writer, flush_interval_s=3600, max_bytes=1)
    wal.start()
    try:
        logged(wal, [span_batch(llm_spans(uuid.uuid4().bytes, 1, time.time_ns()))])
        with pytest.raises(LogFull) as refused:
            wal.append(span_batch(llm_spans(uuid.uuid4().bytes, 1, time.time_ns())))
        assert refused.value.retry_after == 1.0
    finally:
        wal.close()
    assert segments(tmp_path / "wal") == []  # closing inserted what was logged


def test_a_full_disk_refuses_before_writing(store, tmp_path):
    problem = "free space 10 MiB is below the floor of 20 MiB (min_free_disk_mb)"
    wal = WriteAheadLog(tmp_path / "wal", store.writer, disk_problem=lambda: problem)
    wal.start()
    try:
        with pytest.raises(DiskFull, match="below the floor"):
            wal.append(span_batch(llm_spans(uuid.uuid4().bytes, 1, time.time_ns())))
        assert segments(tmp_path / "wal") == [] and wal.stats.appends == 0
    finally:
        wal.close()
