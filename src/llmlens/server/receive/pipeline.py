"""decode -> normalise -> store, the same for every transport. Returns what OTLP's
partial_success needs; raises the decode and store errors for the transport to map."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from llmlens.server.errors import PayloadError
from llmlens.server.normalise import CostModel
from llmlens.server.receive.workers import build_batch, build_in_worker
from llmlens.server.signals import BodyKind
from llmlens.server.store import Store
from llmlens.server.store.batch import DEFAULT_DERIVATIONS, Batch, Derivation


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    rejected: int
    message: str


class Ingestor:
    """Builds batches (in worker processes when given a pool) and commits them."""

    def __init__(self, store: Store, cost: CostModel,
                 start_workers: Callable[[], ProcessPoolExecutor] | None = None,
                 derivations: Sequence[Derivation] = DEFAULT_DERIVATIONS) -> None:
        self.store = store
        self.cost = cost
        self.derivations = tuple(derivations)  # the workers get the same list from start_workers
        self._start_workers = start_workers
        self.workers = start_workers() if start_workers else None

    async def build(self, signal: str, body: bytes, kind: BodyKind) -> Batch:
        loop = asyncio.get_running_loop()
        if self.workers is None:
            return await asyncio.to_thread(build_batch, signal, body, kind, self.cost, self.derivations)
        workers = self.workers
        try:
            built = await loop.run_in_executor(workers, build_in_worker, signal, body, kind)
        except BrokenProcessPool as exc:
            # A worker died (out of memory, or a decoder crash on this body): replace the pool
            # so the server keeps serving, and refuse the body rather than invite a retry loop.
            if self.workers is workers and self._start_workers is not None:
                self.workers = self._start_workers()
                workers.shutdown(wait=False, cancel_futures=True)
            raise PayloadError("the body could not be decoded: the decoder process died on it") from exc
        return built.batch()

    async def ingest(self, signal: str, body: bytes, kind: BodyKind) -> IngestResult:
        with self.store.incoming():
            batch = await self.build(signal, body, kind)
            future = self.store.submit(batch)
        await asyncio.wrap_future(future)
        return IngestResult(batch.accepted, batch.rejected, batch.error_message())

    def close(self) -> None:
        if self.workers is not None:
            self.workers.shutdown(wait=True, cancel_futures=False)
