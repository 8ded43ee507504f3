"""Storage: one facade over a backend (chDB or ClickHouse), a single writer, pooled readers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from llmlens.server.errors import StoreError
from llmlens.server.store.backend import Backend
from llmlens.server.store.columns import METRIC_TABLES
from llmlens.server.store.schema import apply_retention, migrate, tune_embedded_storage
from llmlens.server.store.writer import BatchWriter, CommitListener, WriterStats

if TYPE_CHECKING:
    from llmlens.server.store.batch import Batch

__all__ = ["Store", "open_backend"]


class Store:
    """What the API and receivers use: `await fetch(sql, params)` and `await write(batch)`."""

    def __init__(self, backend: Backend, *, ttl_days: int = 30, readers: int = 4,
                 max_pending_rows: int = 400_000) -> None:
        self.backend = backend
        self.schema_version = migrate(backend, ttl_days)
        apply_retention(backend, ttl_days)
        if backend.name == "chdb":
            tune_embedded_storage(backend)
        self.writer = BatchWriter(backend, max_pending_rows=max_pending_rows)
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="llmlens-reader")

    @property
    def backend_name(self) -> str:
        return self.backend.name

    async def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self.backend.fetch, sql, params)

    def submit(self, batch: Batch) -> Future:
        """Queue a batch for the writer; the future resolves once it is committed. Raises Overloaded."""
        return self.writer.submit(batch)

    def incoming(self) -> AbstractContextManager[None]:
        """Wrap the building of a batch about to be submitted: the writer lingers for it."""
        return self.writer.incoming()

    async def write(self, batch: Batch) -> None:
        """Resolves once the batch is committed; raises Overloaded or StoreError."""
        await asyncio.wrap_future(self.writer.submit(batch))

    def write_sync(self, batch: Batch, timeout: float | None = None) -> None:
        self.writer.submit(batch).result(timeout)

    def on_commit(self, listener: CommitListener) -> None:
        """Call `listener(batches)` on the writer's thread after each commit, with exactly the rows
        committed (counted once: a failed commit calls nothing). It must be quick and not raise."""
        self.writer.listeners.append(listener)

    @property
    def writer_stats(self) -> WriterStats:
        return self.writer.stats

    async def counts(self) -> dict[str, int]:
        union = " UNION ALL ".join(f"SELECT count() AS c FROM {t}" for t in METRIC_TABLES)
        rows = await self.fetch(
            "SELECT (SELECT count() FROM otel_traces) AS spans, (SELECT count() FROM otel_logs) AS logs, "
            f"(SELECT sum(c) FROM ({union})) AS metric_points"
        )
        row = rows[0] if rows else {}
        return {k: int(row.get(k) or 0) for k in ("spans", "logs", "metric_points")}

    async def writable(self) -> bool:
        try:
            await self.fetch("SELECT 1 AS ok FROM llmlens_schema_migrations LIMIT 1")
        except StoreError:
            return False
        return not self.writer.closed

    def close(self) -> None:
        self.writer.close()
        self._readers.shutdown(wait=True)
        self.backend.close()


def open_backend(*, data_dir: str | None = None, clickhouse_url: str | None = None,
                 clickhouse_cluster: str | None = None, query_timeout_s: float = 30.0) -> Backend:
    """The embedded store in `data_dir`, or a ClickHouse server (the Distributed tables of a cluster)."""
    if clickhouse_url:
        from llmlens.server.store.clickhouse_backend import ClickHouseBackend

        return ClickHouseBackend(clickhouse_url, cluster=clickhouse_cluster, query_timeout_s=query_timeout_s)
    if clickhouse_cluster:
        raise ValueError("a ClickHouse cluster needs a ClickHouse URL (one of its hosts)")
    from llmlens.server.store.chdb_backend import ChdbBackend

    if not data_dir:
        raise ValueError("a data directory is needed for the embedded store")
    return ChdbBackend(data_dir, query_timeout_s)
