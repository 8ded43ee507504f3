"""decode -> normalise -> store, the same for every transport. Returns what OTLP's
partial_success needs; raises the decode and store errors for the transport to map."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from llmlens.server.errors import ServerError, Unavailable
from llmlens.server.normalise import CostModel
from llmlens.server.receive.inflight import InflightBytes
from llmlens.server.receive.pool_health import exit_codes, has_dead_worker, unstick
from llmlens.server.receive.workers import BuiltBatch, build_batch, build_in_worker
from llmlens.server.signals import BodyKind
from llmlens.server.store import Store
from llmlens.server.store.batch import DEFAULT_DERIVATIONS, Batch, Derivation
from llmlens.server.store.wal import WriteAheadLog

log = logging.getLogger("llmlens.receive")


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    rejected: int
    message: str


class ExportOutcomes:
    """Told how each export was answered (the server's own metrics listen); by default nobody is."""

    def answered(self, signal: str, batch: Batch, seconds: float) -> None:
        """Answered 200, `seconds` after the body arrived (some items may have been rejected)."""

    def refused(self, signal: str, transport: str, error: ServerError) -> None:
        """Answered with an error (called by the transport that answers)."""


class Ingestor:
    """Builds batches (in worker processes when given a pool) and commits them.

    `inflight` bounds the bytes of exports being received, decoded or committed (None: no bound);
    `shutting_down` is set when the server begins to stop, so receivers can refuse bodies still
    arriving instead of holding the shutdown for them. With a write-ahead log (`wal`), an export is
    answered once logged, and inserted with the next flush (store/wal.py); without, once committed.
    """

    def __init__(self, store: Store, cost: CostModel | None,
                 start_workers: Callable[[], ProcessPoolExecutor] | None = None,
                 derivations: Sequence[Derivation] = DEFAULT_DERIVATIONS,
                 max_inflight_bytes: int | None = None) -> None:
        self.store = store
        self.cost = cost
        self.derivations = tuple(derivations)  # the workers get the same list from start_workers
        self._start_workers = start_workers
        self.workers = start_workers() if start_workers else None
        self.inflight = InflightBytes(max_inflight_bytes or sys.maxsize)
        self.shutting_down = asyncio.Event()
        self.outcomes = ExportOutcomes()
        self.wal: WriteAheadLog | None = None
        self._in_workers: set[Future] = set()  # builds submitted to the workers and not done yet
        self._workers_idle_since: float | None = None  # None: the pool has started no process yet

    def begin_shutdown(self) -> None:
        """Set `shutting_down`; safe to call from a signal handler in the event loop's thread."""
        try:
            asyncio.get_running_loop().call_soon_threadsafe(self.shutting_down.set)
        except RuntimeError:  # no loop running here
            self.shutting_down.set()

    async def build(self, signal: str, body: bytes, kind: BodyKind) -> Batch:
        return (await self._build(signal, body, kind))[0]

    async def _build(self, signal: str, body: bytes, kind: BodyKind) -> tuple[Batch, dict[str, bytes] | None]:
        """The batch, and its tables as Arrow IPC when a worker built it (the log writes those bytes)."""
        if self.workers is None:
            assert self.cost is not None, "an Ingestor without workers needs a cost model"
            return await asyncio.to_thread(build_batch, signal, body, kind, self.cost, self.derivations), None
        try:
            return await self._build_in_workers(signal, body, kind)
        except BrokenProcessPool:
            pass  # the pool was replaced: one more try on the new one
        try:
            return await self._build_in_workers(signal, body, kind)
        except BrokenProcessPool as exc:
            # Twice in a row: the machine is killing workers (out of memory?) or this body crashes
            # the decoder. Retryable either way from the client's side; never a 400 for data that
            # may be fine.
            log.error("an ingest worker died again while decoding a retried %s export; answered 503", signal)
            raise Unavailable("the process decoding this export died; retry later") from exc

    async def _build_in_workers(self, signal: str, body: bytes, kind: BodyKind) -> tuple[Batch, dict[str, bytes]]:
        workers = self.workers
        assert workers is not None
        try:
            future = workers.submit(build_in_worker, signal, body, kind)
        except (BrokenProcessPool, OSError, RuntimeError) as exc:
            # submit() fails on a pool that is broken, or breaking: its manager thread has closed the pipes
            # a replacement worker process would inherit (OSError "handle is closed"); or on a pool shut
            # down by the export that replaced it (RuntimeError). The same worker death, retried.
            if type(exc) is RuntimeError and self.workers is workers:  # BrokenProcessPool is one too
                raise
            self._replace_broken(workers)
            raise BrokenProcessPool("the worker pool broke while this export was handed to it") from exc
        self._in_workers.add(future)
        future.add_done_callback(self._built_in_workers)  # called on the pool's thread
        try:
            built = await _result(workers, future)
        except BrokenProcessPool:
            self._replace_broken(workers)
            raise
        except (RuntimeError, asyncio.CancelledError) as exc:
            # Another export found the pool broken first and replaced it: shutting the old pool down
            # cancels what was queued on it ("cannot schedule new futures" for what came just after).
            # That is the same worker death, to be retried on the new pool, not a 500.
            if self.workers is not workers:
                raise BrokenProcessPool("the worker pool was replaced while this export waited") from exc
            raise
        return built.batch(), built.tables

    def _built_in_workers(self, future: Future) -> None:
        self._workers_idle_since = time.monotonic()
        self._in_workers.discard(future)

    def retire_idle_workers(self, idle_s: float) -> bool:
        """Let the worker processes exit once no export has used them for `idle_s` seconds (about 85 MB
        each); the pool put in their place starts processes again with the next export. True if it did."""
        workers, idle_since = self.workers, self._workers_idle_since
        if workers is None or self._start_workers is None or self._in_workers or idle_since is None \
                or time.monotonic() - idle_since < idle_s:
            return False
        self.workers = self._start_workers()
        self._workers_idle_since = None
        # An export handed to the old pool meanwhile is retried on the new one, as after a worker's death.
        workers.shutdown(wait=False, cancel_futures=False)
        log.info("ingest workers idle for %.0f s: stopped them; the next export starts new ones", idle_s)
        return True

    def _replace_broken(self, workers: ProcessPoolExecutor) -> None:
        """Start a new pool in place of a broken one (once, however many requests it failed)."""
        if self.workers is not workers or self._start_workers is None:
            return
        self.workers = self._start_workers()
        log.error("an ingest worker process died (%s); started new workers, and the exports it was "
                  "decoding are retried once", exit_codes(workers))
        workers.shutdown(wait=False, cancel_futures=True)

    async def ingest(self, signal: str, body: bytes, kind: BodyKind) -> IngestResult:
        """Decode, normalise and commit one body. A caller that keeps no reference to `body` lets it
        be freed once its batch is built, instead of after the commit."""
        started = time.perf_counter()
        wal = self.wal
        with self.store.incoming() if wal is None else contextlib.nullcontext():
            batch, ipc = await self._build(signal, body, kind)
            del body
            future = self.store.submit(batch) if wal is None else wal.append(batch, ipc)
            del ipc
        await asyncio.wrap_future(future)
        self.outcomes.answered(signal, batch, time.perf_counter() - started)
        return IngestResult(batch.accepted, batch.rejected, batch.error_message())

    def close(self) -> None:
        if self.workers is not None:
            self.workers.shutdown(wait=True, cancel_futures=False)


# A pool notices a dead worker within milliseconds; one that has not after this never will (pool_health).
_DEATH_GRACE_S = 2.0
_DEATH_CHECK_S = 0.5


async def _result(workers: ProcessPoolExecutor, future: Future) -> BuiltBatch:
    """The worker's result; a pool that lost a worker without noticing is made to break (and so retried)."""
    waiting = asyncio.wrap_future(future)
    dead_since: float | None = None
    try:
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=_DEATH_CHECK_S)
            if done:
                return waiting.result()
            if not has_dead_worker(workers):
                continue
            dead_since = dead_since or time.monotonic()
            if time.monotonic() - dead_since >= _DEATH_GRACE_S:
                codes = exit_codes(workers)
                if unstick(workers):
                    log.error("an ingest worker died without its pool noticing (%s); broke the pool", codes)
    except asyncio.CancelledError:
        waiting.cancel()
        raise
