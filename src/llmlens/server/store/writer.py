"""The single writer: group commit of concurrent export requests, acknowledged after insert.

Why one thread: chDB costs ~20 ms per INSERT whatever its size, and tiny inserts make many
parts. Requests that arrive while an insert runs wait in the queue and go into the next
one together, so throughput grows with load while each request still waits for its own
data to be committed (a 2xx means stored).

Why split by day: an INSERT spanning two partitions commits two parts separately. Each
(table, day) block is inserted with its own deduplication token, so retrying a failed
group never stores a block twice.

Why the raw spans go in on a second thread: every sender waits for the commit, and an INSERT
mostly keeps one core busy, so inserting otel_traces beside llm_calls shortens the wait
(measured with benchmarks/ingest.py, interleaved: the machine 88-89% busy instead of 83-84%,
and more spans/s in each of four pairs of runs).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from llmlens.server.errors import Overloaded, StoreError
from llmlens.server.store import trace_index
from llmlens.server.store.backend import Backend
from llmlens.server.store.columns import TABLES, TIME_COLUMN
from llmlens.server.store.dedup import REQUEST_DIGESTS, Deduplicator, StoredKeys
from llmlens.server.store.disk import DiskFull

if TYPE_CHECKING:
    from llmlens.server.store.batch import Batch

log = logging.getLogger("llmlens.store.writer")

_DAY_NS = 86_400 * 1_000_000_000
# trace_index (what the trace list reads) goes last in every commit: a listed trace's spans and
# calls are always stored. (The other tables of a commit land within milliseconds of each other.)
_INSERT_ORDER = [*TABLES, trace_index.TABLE]
# Inserted after the rows they vouch for, in this order: a listed trace's spans and calls are
# stored; a request whose digest is stored has all its rows stored (so its resend may be dropped).
_LAST = (trace_index.TABLE, REQUEST_DIGESTS)
_MAX_FINISH_TRIES = 20  # tries to finish a part-way commit (each before a new one) before giving it up


CommitListener = Callable[[Sequence["Batch"]], None]


@dataclass
class Recorded:
    """What the first try of a caller's group found before inserting anything: the rows already
    stored, and each table's highest block number. Given these again, a later try (after a crash)
    trims the same rows and can tell the blocks that landed, as it is the only writer of the tables."""

    stored: StoredKeys
    tops: dict[str, int]


@dataclass
class _Group:
    """Batches committed together as given, with a caller's token (the write-ahead log's flushes)."""

    batches: list[Batch]
    token: str
    recorded: Recorded | None  # from an earlier try, or None: look up and call before_insert
    before_insert: Callable[[Recorded], None]  # must make `recorded` durable; nothing is inserted before
    future: Future


@dataclass
class WriterStats:
    commits: int = 0
    rows: int = 0
    failures: int = 0
    last_commit_ms: float = 0.0
    pending_rows: int = 0
    dedup_seconds: float = 0.0  # time spent finding rows already stored (store/dedup.py), in total


class BatchWriter:
    def __init__(
        self,
        backend: Backend,
        *,
        max_rows_per_commit: int = 20_000,
        max_pending_rows: int = 400_000,
        linger_seconds: float = 0.5,
        retries: int = 3,
        max_partitions_per_commit: int = 64,
    ) -> None:
        self._backend = backend
        self._max_rows = max_rows_per_commit
        self._max_pending = max_pending_rows
        self._linger = linger_seconds
        self._retries = retries
        self._max_partitions = max_partitions_per_commit
        self._unfinished: _Unfinished | None = None
        self.dedup = Deduplicator(backend)
        self._queue: queue.Queue[tuple[Batch, Future] | _Group | None] = queue.Queue()
        self._pending_rows = 0
        self._incoming = 0  # batches being built that will be submitted soon
        self._pending_lock = threading.Lock()
        self._closed = False
        self.stats = WriterStats()
        self.listeners: list[CommitListener] = []
        self._side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmlens-insert")
        self._thread = threading.Thread(target=self._run, name="llmlens-writer", daemon=True)
        self._thread.start()

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    @property
    def closed(self) -> bool:
        return self._closed

    @contextlib.contextmanager
    def incoming(self) -> Iterator[None]:
        """Wrap the building of a batch that will be submitted: the writer lingers for it."""
        with self._pending_lock:
            self._incoming += 1
        try:
            yield
        finally:
            with self._pending_lock:
                self._incoming -= 1

    def submit(self, batch: Batch) -> Future:
        """Queue a batch; the future resolves once it is committed (or fails)."""
        future: Future = Future()
        rows = batch.row_count
        if rows == 0:
            future.set_result(None)
            return future
        with self._pending_lock:
            if self._closed:
                raise Overloaded("the server is shutting down", retry_after=5.0)
            if self._pending_rows + rows > self._max_pending and self._pending_rows > 0:
                raise Overloaded(f"write queue is full ({self._pending_rows} rows waiting)", retry_after=1.0)
            self._pending_rows += rows
            self.stats.pending_rows = self._pending_rows
        self._queue.put((batch, future))
        return future

    def submit_group(self, batches: list[Batch], token: str, recorded: Recorded | None,
                     before_insert: Callable[[Recorded], None]) -> Future:
        """Commit `batches` as one group, alone, with deduplication tokens made from `token`; the future
        resolves once committed or fails. Given the same batches and what the first try recorded
        (after a failure, or after a crash), the same blocks are built and those that landed in the
        first try are not inserted again. Only for a caller that is the one writer of the tables
        (the write-ahead log): a block is known to have landed by a part above the recorded block
        numbers. Not refused when the queue is full: the caller bounds what it holds."""
        future: Future = Future()
        if self._closed:
            future.set_exception(StoreError("the store is closing"))
            return future
        self._queue.put(_Group(batches, token, recorded, before_insert, future))
        return future

    def close(self, timeout: float = 60.0) -> None:
        """Stop accepting, commit everything already accepted, stop the thread."""
        with self._pending_lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)
        self._side.shutdown(wait=True)

    def _run(self) -> None:
        stopping = False
        held: tuple[Batch, Future] | _Group | None = None  # what would have overfilled the last group
        while not stopping:
            item = held if held is not None else self._queue.get()
            held = None
            if item is None:
                break
            if isinstance(item, _Group):
                self._commit_group(item)
                continue
            group = [item]
            rows = item[0].row_count
            parts = _partitions(item[0])
            deadline = time.monotonic() + self._linger
            while rows < self._max_rows:
                # Wait for batches still being decoded: an insert costs ~10-20 ms whatever its
                # size, so one commit of four requests is far cheaper than four of one, and bigger
                # parts mean fewer merges. 500 ms, not 150 (nor 50): on a busy machine a 512-span
                # request of the heavy shape takes longer than 150 ms to decode, and commits of
                # benchmarks/ingest.py split (1,754 spans a commit, not 2,048); at 500 ms every
                # commit took all four requests: 5,921 -> 6,935 spans/s heavy, 6,955 -> 7,231 on
                # the default shape (adjacent runs). Only a batch still decoding is waited for.
                wait = deadline - time.monotonic() if self._incoming > 0 else 0.0
                try:
                    nxt = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                if isinstance(nxt, _Group):
                    held = nxt  # committed alone, after this group
                    break
                more = parts | _partitions(nxt[0])
                if len(more) > self._max_partitions:
                    # One INSERT per (table, day): a group over many days would make every request
                    # in it wait for all of them. The batch goes first into the next commit.
                    held = nxt
                    break
                parts = more
                group.append(nxt)
                rows += nxt[0].row_count
            self._commit(group, rows)
        # Drain what was queued before close() so every accepted request gets its answer.
        rest = [held] if held is not None else []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Group):
                self._commit_group(item)
            elif item is not None:
                rest.append(item)
        if rest and isinstance(rest[0], _Group):
            self._commit_group(rest.pop(0))
        if rest:
            self._commit(rest, sum(b.row_count for b, _ in rest))
        if self._unfinished is not None:
            try:
                self._finish_unfinished()
            except StoreError as exc:
                rows = sum(b.row_count for b in self._unfinished.batches)
                log.error("%d rows of a commit that failed (answered 503) could not be finished before "
                          "shutdown: %s", rows, exc)

    def _commit(self, group: list[tuple[Batch, Future]], rows: int) -> None:
        """Insert a group all or nothing, from its clients' point of view: a group that fails part-way
        is finished (the same blocks, the same deduplication tokens) before anything else is
        inserted, so the retries its 503s invite find every row stored and are dropped as repeats."""
        started = time.perf_counter()
        batches = [batch for batch, _ in group]
        error: Exception | None = None
        try:
            problem = getattr(self._backend, "disk_problem", lambda: None)()
            if problem:  # below the free-space floor or read-only: refuse before inserting anything
                raise DiskFull(problem)
            if self._unfinished is not None:
                self._finish_unfinished()
            checking = time.perf_counter()
            digests, _ = self.dedup.trim(batches)
            self.stats.dedup_seconds += time.perf_counter() - checking
            blocks = _blocks(batches)
            if digests is not None:
                blocks.append((REQUEST_DIGESTS, 0, digests))  # one table, one day: a commit takes seconds
            unfinished = _Unfinished(blocks, uuid.uuid4().hex, batches)
            error = self._insert_with_retries(unfinished)
            if error is not None:
                self._unfinished = unfinished
        except StoreError as exc:
            error = exc
        except Exception as exc:  # a bug in building blocks must fail the requests, not kill the writer
            log.exception("could not build insert blocks")
            error = exc
        with self._pending_lock:
            self._pending_rows -= rows
            self.stats.pending_rows = self._pending_rows
        if error is None:
            self.stats.commits += 1
            self.stats.rows += rows
            self.stats.last_commit_ms = (time.perf_counter() - started) * 1000
            self._notify(batches)
            for _, future in group:
                future.set_result(None)
        else:
            self.stats.failures += 1
            for _, future in group:
                future.set_exception(error if isinstance(error, StoreError) else StoreError(str(error)))

    def _commit_group(self, group: _Group) -> None:
        """A caller's group: its own token, and no unfinished state kept on failure (the caller tries
        the same group again, which inserts the same blocks)."""
        started = time.perf_counter()
        rows = sum(b.row_count for b in group.batches)
        try:
            problem = getattr(self._backend, "disk_problem", lambda: None)()
            if problem:
                raise DiskFull(problem)
            if self._unfinished is not None:
                self._finish_unfinished()
            checking = time.perf_counter()
            recorded = group.recorded
            digests, found = self.dedup.trim(group.batches, None if recorded is None else recorded.stored)
            self.stats.dedup_seconds += time.perf_counter() - checking
            blocks = _blocks(group.batches)
            if digests is not None:
                blocks.append((REQUEST_DIGESTS, 0, digests))
            if recorded is None:
                group.before_insert(Recorded(found, self._tops({table for table, _, _ in blocks})))
            else:  # a try after one that may have stored some blocks
                blocks = [block for block in blocks if not self._landed(block, recorded.tops, blocks)]
            error = self._insert_with_retries(_Unfinished(blocks, group.token, group.batches))
        except StoreError as exc:
            error = exc
        except Exception as exc:  # a bug (or the log's disk failing) must fail the group, not kill the writer
            log.exception("could not commit a group")
            error = exc
        if error is None:
            self.stats.commits += 1
            self.stats.rows += rows
            self.stats.last_commit_ms = (time.perf_counter() - started) * 1000
            self._notify(group.batches)
            group.future.set_result(None)
        else:
            self.stats.failures += 1
            group.future.set_exception(error if isinstance(error, StoreError) else StoreError(str(error)))

    def _tops(self, tables: set[str]) -> dict[str, int]:
        rows = self._backend.fetch(
            "SELECT table, max(max_block_number) AS top FROM system.parts WHERE database = currentDatabase() "
            "AND table IN {t:Array(String)} GROUP BY table", {"t": sorted(tables)})
        return {row["table"]: int(row["top"]) for row in rows}

    def _landed(self, block: tuple[str, int, pa.Table], tops: dict[str, int],
                blocks: list[tuple[str, int, pa.Table]]) -> bool:
        """Whether an earlier try stored this block: a part above the table's recorded top holds it
        (a failed insert makes no part; a merge keeps its parts' highest block number). A table
        with blocks of several days tells them apart by the day of the new parts' rows."""
        table, day, _ = block
        parts = [row["name"] for row in self._backend.fetch(
            "SELECT name FROM system.parts WHERE database = currentDatabase() AND table = {t:String} AND active "
            "AND max_block_number > {top:Int64}", {"t": table, "top": tops.get(table, 0)})]
        if not parts or sum(1 for b in blocks if b[0] == table) == 1:
            return bool(parts)
        day_of = ("dateDiff('day', toDate('1970-01-01'), Day)" if table == trace_index.TABLE
                  else f"intDiv(toUnixTimestamp64Nano({TIME_COLUMN[table]}), {_DAY_NS})")
        rows = self._backend.fetch(f"SELECT count() AS n FROM {table} WHERE _part IN {{p:Array(String)}} "
                                   f"AND {day_of} = {{d:Int64}}", {"p": parts, "d": day})
        return int(rows[0]["n"]) > 0

    def _insert_with_retries(self, unfinished: _Unfinished) -> StoreError | None:
        error = None
        for attempt in range(self._retries + 1):
            try:
                self._insert(unfinished.blocks, unfinished.token)
                return None
            except StoreError as exc:
                error = exc
                log.warning("insert failed (attempt %d of %d): %s", attempt + 1, self._retries + 1, exc)
                time.sleep(min(0.05 * 2**attempt, 1.0))
        return error

    def _finish_unfinished(self) -> None:
        """Insert the blocks of the commit that failed part-way; raises StoreError if it fails again."""
        unfinished = self._unfinished
        assert unfinished is not None
        try:
            self._insert(unfinished.blocks, unfinished.token)
        except StoreError:
            unfinished.failures += 1
            if unfinished.failures >= _MAX_FINISH_TRIES:
                # An error that repeats whatever the disk does would otherwise stop all ingest. Its
                # clients were answered 503 and resend; what of it landed may be taken as repeats.
                self._unfinished = None
                log.error("gave up finishing a commit that failed part-way (%d rows, answered 503) after %d "
                          "tries", sum(b.row_count for b in unfinished.batches), unfinished.failures)
            raise
        self._unfinished = None
        log.info("finished a commit that had failed part-way (%d rows, answered 503; their resends are "
                 "dropped as repeats)", sum(b.row_count for b in unfinished.batches))
        self._notify(unfinished.batches)

    def _notify(self, batches: list[Batch]) -> None:
        for listener in self.listeners:
            try:
                listener(batches)
            except Exception:  # a listener's bug must not fail a commit that succeeded
                log.exception("commit listener %r failed", listener)

    def _insert(self, blocks: list[tuple[str, int, pa.Table]], token: str) -> None:
        """Insert the blocks: the raw spans on a second thread while the other tables go in here,
        then the trace index. Every block is settled before an error is raised, so a retry
        never overlaps an insert still running (and its deduplication token skips what landed)."""
        def insert(block: tuple[str, int, pa.Table]) -> None:
            table, day, data = block
            self._backend.insert(table, data, f"{token}-{table}-{day}")

        spans = [b for b in blocks if b[0] == "otel_traces"]
        others = [b for b in blocks if b[0] not in ("otel_traces", *_LAST)]
        pending = self._side.submit(lambda: [insert(b) for b in spans])
        try:
            for block in others:
                insert(block)
        finally:
            wait([pending])
        pending.result()
        for table in _LAST:
            for block in blocks:
                if block[0] == table:
                    insert(block)


@dataclass
class _Unfinished:
    """A commit's insert blocks and deduplication token, kept when it fails part-way."""

    blocks: list[tuple[str, int, pa.Table]]
    token: str
    batches: list[Batch]
    failures: int = 0


def _partitions(batch: Batch) -> set[tuple[str, int]]:
    """The (table, day) partitions a batch's rows fall in: one INSERT each."""
    return {(table, day) for table, arrow in batch.arrow.items() if arrow.num_rows
            for day in pc.unique(_days(table, arrow)).to_pylist()}


def _blocks(batches: list[Batch]) -> list[tuple[str, int, pa.Table]]:
    """Concatenate the group's Arrow tables per table and split them per day partition."""
    blocks = []
    frozen = [b.freeze() for b in batches]
    for table in _INSERT_ORDER:
        parts = [b.arrow[table] for b in frozen if table in b.arrow]
        if not parts:
            continue
        arrow = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        days = _days(table, arrow)
        low, high = pc.min_max(days).values()
        if low == high:
            blocks.append((table, low.as_py(), arrow))
            continue
        for day in pc.unique(days).to_pylist():
            blocks.append((table, day, arrow.filter(pc.equal(days, day))))
    return blocks


def _days(table: str, arrow: pa.Table) -> pa.Array:
    """Days since 1970 of each row: the day partition it belongs to."""
    if table == trace_index.TABLE:
        return pc.cast(arrow.column("Day"), pa.int32())
    return pc.divide(pc.cast(arrow.column(TIME_COLUMN[table]), pa.int64()), _DAY_NS)
