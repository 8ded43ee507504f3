"""Write-ahead log for ingest: an export is acknowledged once its rows are fsynced here, and they
reach the tables later in big inserts.

Why: every insert costs ~10-20 ms and makes a part in each table, whatever its size, and each part
is merged again and again. Committing each second's exports as one insert instead of every few
requests cut the server's CPU a span by more than half (benchmarks/ingest.py). Prometheus, Tempo
and Loki acknowledge from a log the same way.

How:
- Each accepted export is one record appended to the open segment (`<number>.wal`): its received
  tables as Arrow IPC, its counts and request digest, behind a length and a CRC-32. Records of
  exports arriving together are written together and share one fdatasync; the export is answered
  2xx after it.
- A segment is sealed after `flush_interval_s` or `max_rows` rows, and the flusher inserts all its
  exports as one commit through the writer (the same dedup, order and block split as a commit of
  concurrent requests), with insert deduplication tokens named after the segment.
- Before that insert, what its first try found is recorded at the end of the segment (fsynced): the
  rows already stored (the deduplicator's look-ups) and each table's highest block number. A later
  try of the segment (after a failure, or replayed after a crash) trims exactly the same rows and
  builds the same blocks; a block with a part above its table's recorded number landed in the
  earlier try and is not inserted again (the flusher is the tables' one writer). So a segment
  inserted part-way before a crash is stored once, the LLM calls of spans that had landed included.
- The segment file is deleted once its insert committed; at start, every segment left is replayed
  (inserted) before the server is ready. A record cut short by a crash fails its CRC: it was never
  acknowledged (its fdatasync did not return), so it is dropped and the file truncated before it.
- Exports are refused (503, Retry-After) while the log holds more than `max_bytes`: the store is
  not keeping up. A full disk is refused before anything is written, as without the log.

Data becomes queryable when its segment is flushed: up to `flush_interval_s` plus one insert after
its 2xx (without the log, at the 2xx).
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import struct
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from llmlens.server.errors import StoreError, Unavailable
from llmlens.server.store.batch import Batch
from llmlens.server.store.columns import TIME_COLUMN
from llmlens.server.store.disk import DiskFull
from llmlens.server.store.writer import BatchWriter, Recorded

log = logging.getLogger("llmlens.store.wal")

_HEADER = struct.Struct("<II")  # payload length, CRC-32 of the payload
_SUFFIX = ".wal"
_EXPORT, _FLUSHING = "export", "flushing"
_RETRY_S = (0.5, 1.0, 2.0, 5.0)  # waits between tries of a failing flush (the last repeats)


class LogFull(Unavailable):
    """The log holds more than its bound: inserts are behind. Retry shortly."""


@dataclass
class _Segment:
    number: int
    path: Path
    batches: list[Batch] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    opened: float = field(default_factory=time.monotonic)
    recorded: Recorded | None = None  # what the first insert's try found, once made durable


@dataclass
class WalStats:
    bytes: int = 0  # in segments not yet flushed
    appends: int = 0
    syncs: int = 0
    flushes: int = 0
    flush_failures: int = 0
    replayed_rows: int = 0
    torn_records: int = 0


class WriteAheadLog:
    def __init__(self, folder: str | Path, writer: BatchWriter, *, flush_interval_s: float = 1.0,
                 max_rows: int = 50_000, max_bytes: int = 512 * 1024 * 1024,
                 disk_problem: Callable[[], str | None] = lambda: None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._writer = writer
        self._interval = flush_interval_s
        self._max_rows = max_rows
        self._max_bytes = max_bytes
        self._disk_problem = disk_problem
        self.stats = WalStats()
        self._appends: queue.Queue[tuple[Batch, dict, Future] | None] = queue.Queue()
        self._sealed: queue.Queue[_Segment | None] = queue.Queue()
        self._open: _Segment | None = None
        self._file: BinaryIO | None = None
        self._next = 1 + max((n for n, _ in self._segments()), default=0)
        self._lock = threading.Lock()
        self._closed = False
        self._give_up = threading.Event()  # set when closing has waited long enough for failing inserts
        self._threads: list[threading.Thread] = []

    # --- start: replay ---------------------------------------------------------------------------

    def replay(self) -> int:
        """Insert every segment left by the last run (in order); returns the rows replayed."""
        rows = 0
        for number, path in self._segments():
            segment, torn = _read(number, path)
            self.stats.torn_records += torn
            if segment.batches:
                with self._lock:
                    self.stats.bytes += segment.bytes
                log.warning("replaying write-ahead log segment %s: %d rows of %d exports%s", path.name,
                            segment.rows, len(segment.batches),
                            " (a torn record at its end, never acknowledged, was dropped)" if torn else "")
                self._flush(segment, retry_for_s=60.0)
                rows += segment.rows
            else:
                path.unlink(missing_ok=True)
        self.stats.replayed_rows += rows
        return rows

    # --- running ---------------------------------------------------------------------------------

    def start(self) -> None:
        for target, name in ((self._append_loop, "llmlens-wal-append"), (self._flush_loop, "llmlens-wal-flush")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def append(self, batch: Batch, ipc: dict[str, bytes] | None = None) -> Future:
        """Log `batch` (`ipc`: its tables already as Arrow IPC, as an ingest worker hands them back); the
        future resolves once it is on disk (fsynced), or fails (LogFull, DiskFull)."""
        future: Future = Future()
        if batch.row_count == 0:
            future.set_result(None)
            return future
        if self._closed:
            raise Unavailable("the server is shutting down", retry_after=5.0)
        if self.stats.bytes > self._max_bytes:
            raise LogFull(f"the write-ahead log holds {self.stats.bytes // 2**20} MiB not yet inserted "
                          f"(bound {self._max_bytes // 2**20} MiB): the store is behind", retry_after=1.0)
        problem = self._disk_problem()
        if problem:  # below the free-space floor or read-only: refuse before writing anything
            raise DiskFull(problem)
        self._appends.put((batch, _export(batch, ipc), future))  # made a record on the log's thread
        return future

    def close(self, timeout: float = 60.0) -> None:
        """Stop accepting, insert everything logged, stop the threads. A segment whose insert still
        fails after `timeout` is left for the next start to replay."""
        if self._closed:
            return
        self._closed = True
        self._appends.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._give_up.set()
        for thread in self._threads:
            thread.join(max(_RETRY_S))
        left = [path.name for _, path in self._segments()]
        if left:
            log.error("the store did not take the write-ahead log's segments %s before shutdown: they are "
                      "inserted at the next start", ", ".join(left))

    def _append_loop(self) -> None:
        while True:
            wait = None
            if self._open is not None and self._open.batches:
                wait = max(0.0, self._open.opened + self._interval - time.monotonic())
            try:
                item = self._appends.get(timeout=wait)
            except queue.Empty:
                self._seal()
                continue
            items = [item]
            while True:  # everything queued meanwhile shares this fsync
                try:
                    items.append(self._appends.get_nowait())
                except queue.Empty:
                    break
            stopping = None in items
            self._write([i for i in items if i is not None])
            if stopping:
                self._seal()
                self._sealed.put(None)
                return
            if self._open is not None and self._open.rows >= self._max_rows:
                self._seal()

    def _write(self, exports: list[tuple[Batch, dict, Future]]) -> None:
        if not exports:
            return
        items = [(batch, _record(_EXPORT, export), future) for batch, export, future in exports]
        try:
            segment = self._segment()
            assert self._file is not None
            start = self._file.tell()
            try:
                for _, record, _ in items:
                    self._file.write(record)
                self._file.flush()
                os.fdatasync(self._file.fileno())
            except OSError:
                # Nothing of this write is acknowledged: cut it off, so what follows is readable.
                self._file.seek(start)
                self._file.truncate()
                raise
        except OSError as exc:
            error = DiskFull(f"could not write the write-ahead log: {exc}")
            for _, _, future in items:
                future.set_exception(error)
            return
        self.stats.syncs += 1
        size = sum(len(record) for _, record, _ in items)
        with self._lock:
            self.stats.bytes += size
        segment.bytes += size
        for batch, _, future in items:
            segment.batches.append(batch)
            segment.rows += batch.row_count
            self.stats.appends += 1
            future.set_result(None)

    def _segment(self) -> _Segment:
        if self._open is None:
            self._open = _Segment(self._next, self.folder / f"{self._next:012d}{_SUFFIX}")
            self._next += 1
            self._file = open(self._open.path, "ab")  # noqa: SIM115 -- closed when sealed
            _sync_folder(self.folder)  # the new file's name is durable before records in it are acknowledged
        return self._open

    def _seal(self) -> None:
        if self._open is None:
            return
        assert self._file is not None
        self._file.close()
        segment, self._open, self._file = self._open, None, None
        if segment.batches:
            self._sealed.put(segment)
        else:
            segment.path.unlink(missing_ok=True)

    def _flush_loop(self) -> None:
        while (segment := self._sealed.get()) is not None:
            if not self._flush(segment, retry_for_s=None):
                return  # closing: this segment and those after it stay for the replay

    def _flush(self, segment: _Segment, retry_for_s: float | None) -> bool:
        """Insert a segment's exports as one commit, retried until it commits (or `retry_for_s` passed:
        then StoreError), then delete the segment. False if closing gave up on it."""
        started = time.monotonic()
        tries = 0
        while True:
            future = self._writer.submit_group(segment.batches, f"wal-{segment.number}", segment.recorded,
                                               lambda recorded: self._record(segment, recorded))
            try:
                future.result()
                break
            except StoreError as exc:
                tries += 1
                self.stats.flush_failures += 1
                if retry_for_s is not None and time.monotonic() - started > retry_for_s:
                    raise
                wait = _RETRY_S[min(tries, len(_RETRY_S)) - 1]
                log.warning("inserting write-ahead log segment %s failed (try %d; retried in %.1f s): %s",
                            segment.path.name, tries, wait, exc)
                if self._give_up.wait(wait):
                    return False
        segment.path.unlink(missing_ok=True)
        self.stats.flushes += 1
        with self._lock:
            self.stats.bytes -= segment.bytes
        return True

    def _record(self, segment: _Segment, recorded: Recorded) -> None:
        """Called by the writer before it inserts: make what its first try found durable, so a replay
        trims the same rows and skips the blocks that landed (see the module's docstring)."""
        with open(segment.path, "ab") as file:
            file.write(_record(_FLUSHING, recorded))
            file.flush()
            os.fdatasync(file.fileno())
        segment.recorded = recorded

    def _segments(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.folder.glob(f"*{_SUFFIX}"):
            if path.stem.isdigit():
                found.append((int(path.stem), path))
        return sorted(found)


def _export(batch: Batch, ipc: dict[str, bytes] | None) -> dict:
    """What replay needs to rebuild the batch: the received tables (derived ones are derived again)."""
    ipc = ipc or {}
    return {
        "tables": {name: ipc.get(name) or _ipc(table) for name, table in batch.arrow.items() if name in TIME_COLUMN},
        "derived_by": batch.derived_by, "accepted": batch.accepted, "rejected": batch.rejected,
        "errors": batch.errors, "request_digest": batch.request_digest,
    }


def _batch(export: dict) -> Batch:
    arrow = {name: pa.ipc.open_stream(data).read_all() for name, data in export["tables"].items()}
    batch = Batch(arrow=arrow, accepted=export["accepted"], rejected=export["rejected"], errors=export["errors"],
                  request_digest=export["request_digest"])
    batch.derive(export["derived_by"])
    return batch


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _record(kind: str, body: object) -> bytes:
    # pickle: the log is read back only by this server, from its own data directory (as the store is).
    payload = pickle.dumps((kind, body), protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _read(number: int, path: Path) -> tuple[_Segment, int]:
    """A segment's exports and recorded dedup outcome; a torn record at the end is cut off (1 returned)."""
    segment = _Segment(number, path)
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
        end = offset + _HEADER.size
        if end > len(data):
            break
        length, crc = _HEADER.unpack_from(data, offset)
        if end + length > len(data) or zlib.crc32(data[end:end + length]) != crc:
            break
        kind, body = pickle.loads(data[end:end + length])
        if kind == _EXPORT:
            batch = _batch(body)
            segment.batches.append(batch)
            segment.rows += batch.row_count
        elif kind == _FLUSHING:
            segment.recorded = body
        offset = end + length
    segment.bytes = offset
    torn = int(offset < len(data))
    if torn:
        with open(path, "r+b") as file:
            file.truncate(offset)
            os.fsync(file.fileno())
    return segment, torn


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
