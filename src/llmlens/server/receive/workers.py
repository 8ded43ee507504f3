"""Decode and normalise in worker processes, so ingest uses every core.

Why processes: turning OTLP into rows is Python work (~30 us a span) and holds the GIL,
while chDB's insert runs in the main process. Workers get the raw body and hand back
Arrow IPC bytes per table (a memory copy to rebuild), so the main process only serves
HTTP/gRPC and inserts. Workers never import chDB.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import _check_system_limits
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from llmlens.server.normalise import CostModel, TimeWindow, build_cost_model
from llmlens.server.signals import SIGNALS, BodyKind
from llmlens.server.store.batch import DEFAULT_DERIVATIONS, Batch, Derivation

_cost: CostModel | None = None
_derivations: Sequence[Derivation] = DEFAULT_DERIVATIONS


def _init_worker(prices_file: str | None, mask_pii: bool, derivations: Sequence[Derivation],
                 window: TimeWindow | None) -> None:
    global _cost, _derivations
    _exit_with_parent()
    _cost = build_cost_model(prices_file, mask_pii, window)
    _derivations = derivations
    pa.array([0], pa.timestamp("ns"))  # pyarrow's first conversion costs ~0.2 s: pay it at start
    # A request's rows stay alive until its batch is frozen (~15k tuples, dicts and lists) and
    # reference counting frees them; with the default thresholds the cycle collector traversed
    # them again and again, ~10% of a worker's instructions (callgrind). Collect less often, and
    # never traverse what initialisation built.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _exit_with_parent() -> None:
    """A worker must not outlive its server: after a kill -9 nothing else would stop it."""
    parent = os.getppid()
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    def watch() -> None:  # portable fallback: notice being re-parented
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="llmlens-parent-watch", daemon=True).start()


def build_batch(signal: str, body: bytes, kind: BodyKind, cost: CostModel,
                derivations: Sequence[Derivation] = DEFAULT_DERIVATIONS) -> Batch:
    """Decode, normalise and freeze one request body of `signal` (a name in SIGNALS)."""
    return SIGNALS[signal].build(body, kind, cost).freeze(derivations)


@dataclass(frozen=True)
class BuiltBatch:
    """What a worker hands back: a batch's counts and its tables as Arrow IPC bytes."""

    accepted: int
    rejected: int
    errors: list[str]
    tables: dict[str, bytes]
    derived: dict[str, Any]
    derived_by: tuple[Derivation, ...]  # pickled by reference: module-level functions
    request_digest: str

    @classmethod
    def of(cls, batch: Batch) -> BuiltBatch:
        return cls(batch.accepted, batch.rejected, batch.errors,
                   {name: _ipc(table) for name, table in batch.arrow.items()}, batch.derived, batch.derived_by,
                   batch.request_digest)

    def batch(self) -> Batch:
        arrow = {name: pa.ipc.open_stream(data).read_all() for name, data in self.tables.items()}
        return Batch(arrow=arrow, derived=self.derived, derived_by=self.derived_by, accepted=self.accepted,
                     rejected=self.rejected, errors=self.errors, request_digest=self.request_digest)


def build_in_worker(signal: str, body: bytes, kind: BodyKind) -> BuiltBatch:
    assert _cost is not None, "worker not initialised"
    return BuiltBatch.of(build_batch(signal, body, kind, _cost, _derivations))


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


class OnDemandPool(ProcessPoolExecutor):
    """A ProcessPoolExecutor made on its first submit, not when the server starts: making one makes
    its queues, whose semaphores start multiprocessing's resource tracker, a Python process (~15 MB,
    ~0.1 s of CPU) that a server nobody exports to has no use for. Its worker processes start on
    demand either way. Until then it has no process (what pool_health reads finds none), and a
    shutdown has nothing to stop."""

    def __init__(self, max_workers: int, **options: Any) -> None:  # noqa: D107 -- ProcessPoolExecutor's
        # What ProcessPoolExecutor would refuse is refused now, not at the first export.
        if max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        _check_system_limits()  # NotImplementedError where the system lacks working semaphores
        self._options = {"max_workers": max_workers, **options}
        self._made = False
        self._closed = False
        self._make_lock = threading.Lock()
        self._processes: dict = {}  # what pool_health reads before the pool is made

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        with self._make_lock:
            if not self._made:
                if self._closed:
                    raise RuntimeError("cannot schedule new futures after shutdown")
                super().__init__(**self._options)
                self._made = True
        return super().submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._make_lock:
            self._closed = True
            if not self._made:
                return
        super().shutdown(wait, cancel_futures=cancel_futures)


def start_workers(count: int, prices_file: str | None, mask_pii: bool,
                  derivations: Sequence[Derivation] = DEFAULT_DERIVATIONS,
                  window: TimeWindow | None = TimeWindow()) -> ProcessPoolExecutor:  # noqa: B008 -- frozen
    """Derivations must be module-level functions (they are pickled by name to the workers). The
    pool, and so the processes, are made with the first build handed to it (OnDemandPool)."""
    # spawn, not fork: the parent has chDB's and grpc's threads running.
    return OnDemandPool(max_workers=count, mp_context=multiprocessing.get_context("spawn"),
                        initializer=_init_worker, initargs=(prices_file, mask_pii, tuple(derivations), window))
