"""The server's own health: items accepted (committed, counted once) and rejected by reason, export
requests refused by status (429: overloaded), ingest and commit latency, the write queue, the store's
size on disk, and query latency by route (request_timing.py)."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

from llmlens.server.errors import ServerError, answer
from llmlens.server.metrics import families as f
from llmlens.server.metrics.registry import Registry
from llmlens.server.store import Store
from llmlens.server.store.batch import Batch
from llmlens.server.store.columns import METRIC_TABLES

# Rows that count as accepted items of each signal.
ITEM_TABLES: dict[str, tuple[str, ...]] = {"traces": ("otel_traces",), "logs": ("otel_logs",),
                                            "metrics": METRIC_TABLES}
# Why items are rejected one by one, recognised in the normaliser's messages (first match wins).
REASONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("too_old", ("retention",)),
    ("too_far_ahead", ("ahead of the server's clock",)),
    ("implausible_usage", ("more than one call can use", "reported cost")),
)


def rejection_reason(message: str) -> str:
    for reason, phrases in REASONS:
        if any(phrase in message for phrase in phrases):
            return reason
    return "invalid"


def rejections_by_reason(rejected: int, errors: Sequence[str]) -> Counter[str]:
    """A batch keeps the first few messages only: the rest are filed under the first one's reason
    (a request's rejections mostly share a cause, such as a clock far off)."""
    counts = Counter(rejection_reason(message) for message in errors[:rejected])
    extra = rejected - sum(counts.values())
    if extra > 0:
        counts[rejection_reason(errors[0]) if errors else "invalid"] += extra
    return counts


class ServerHealth:
    """Told how exports were answered and committed; reads the writer and the disk at scrape time."""

    def __init__(self, registry: Registry, store: Store, data_dir: str | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._registry = registry
        self._store = store
        self._data_dir = data_dir if store.backend_name == "chdb" else None
        self._clock = clock
        self._size_lock = threading.Lock()
        self._size: tuple[float, int] | None = None  # (when measured, bytes)

    # --- told by the ingest path ---------------------------------------------------------------------

    def committed(self, batches: Sequence[Batch]) -> None:
        """After a commit: its items (the writer's stats give the commit's duration)."""
        counts: Counter[str] = Counter()
        for batch in batches:
            for signal, tables in ITEM_TABLES.items():
                for table in tables:
                    arrow = batch.arrow.get(table)
                    if arrow is not None:
                        counts[signal] += arrow.num_rows
        for signal, rows in counts.items():
            if rows:
                self._registry.add(f.ACCEPTED[signal], (), float(rows))
        self._registry.observe(f.COMMIT_SECONDS, (), self._store.writer_stats.last_commit_ms / 1000.0)

    def answered(self, signal: str, batch: Batch, seconds: float) -> None:
        """An export was answered 200 (some items may have been rejected one by one)."""
        self._registry.observe(f.INGEST_SECONDS, (signal,), seconds)
        if batch.rejected and signal in f.REJECTED:
            self._registry.add_many(f.REJECTED[signal], {(reason,): float(n) for reason, n in
                                                          rejections_by_reason(batch.rejected, batch.errors).items()})

    def refused(self, signal: str, transport: str, error: ServerError) -> None:
        """An export was answered with an error (overloaded, bad body, store failing...)."""
        self._registry.add(f.REFUSED_REQUESTS, (signal, transport, str(answer(error).http_status)), 1.0)

    # --- read at scrape time ----------------------------------------------------------------------------

    def gauges(self) -> dict[str, float]:
        stats = self._store.writer_stats
        out = {f.WRITE_QUEUE.name: float(stats.pending_rows), f.COMMITS.name: float(stats.commits),
               f.COMMIT_FAILURES.name: float(stats.failures)}
        size = self.store_bytes()
        if size is not None:
            out[f.STORE_BYTES.name] = float(size)
        return out

    def store_bytes(self, max_age_s: float = 30.0) -> int | None:
        """The embedded store's folder size, measured at most every `max_age_s` (a walk of its files)."""
        if self._data_dir is None:
            return None
        with self._size_lock:
            now = self._clock()
            if self._size is None or now - self._size[0] >= max_age_s:
                self._size = (now, folder_bytes(self._data_dir))
            return self._size[1]


def folder_bytes(path: str) -> int:
    """Bytes of the files under `path` (files vanishing meanwhile, as merged parts do, are skipped)."""
    total = 0
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                continue
    return total
