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
from concurrent.futures import ProcessPoolExecutor

import pyarrow as pa

from llmlens.server.normalise import CostModel, build_cost_model
from llmlens.server.receive.decode import Signal, decode_request
from llmlens.server.store.batch import Batch

_cost: CostModel | None = None


def _init_worker(prices_file: str | None, mask_pii: bool) -> None:
    global _cost
    _exit_with_parent()
    _cost = build_cost_model(prices_file, mask_pii)
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


def build_batch(signal: Signal, body: bytes, kind: str, cost: CostModel) -> Batch:
    from llmlens.server.normalise import (
        normalise_logs,
        normalise_metrics,
        normalise_spans,
        normalise_traces,
        spans,
    )

    if signal == "traces" and kind == "protobuf":
        resources = spans.decode(body)  # the C fast path; None leaves the body to protobuf
        if resources is not None:
            return normalise_spans(resources, cost).freeze()
    message = decode_request(signal, body, kind)  # type: ignore[arg-type]
    if signal == "traces":
        batch = normalise_traces(message, cost)
    elif signal == "logs":
        batch = normalise_logs(message, cost)
    else:
        batch = normalise_metrics(message)
    return batch.freeze()


def _build_in_worker(signal: Signal, body: bytes, kind: str) -> tuple[int, int, list[str], dict[str, bytes]]:
    assert _cost is not None, "worker not initialised"
    batch = build_batch(signal, body, kind, _cost)
    return batch.accepted, batch.rejected, batch.errors, {name: _ipc(t) for name, t in batch.arrow.items()}


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def batch_from_worker(result: tuple[int, int, list[str], dict[str, bytes]]) -> Batch:
    accepted, rejected, errors, tables = result
    arrow = {name: pa.ipc.open_stream(data).read_all() for name, data in tables.items()}
    return Batch(arrow=arrow, accepted=accepted, rejected=rejected, errors=errors)


def start_workers(count: int, prices_file: str | None, mask_pii: bool) -> ProcessPoolExecutor:
    # spawn, not fork: the parent has chDB's and grpc's threads running.
    return ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(prices_file, mask_pii))
