"""What a storage transport must do. chDB (embedded) and ClickHouse (server) both speak the
same SQL, so the store above this line never knows which one it has."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import pyarrow as pa


class Backend(Protocol):
    name: str

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (DDL, ALTER, OPTIMIZE)."""

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a SELECT with `{name:Type}` placeholders; rows as dicts (JSONEachRow semantics)."""

    def insert(self, table: str, data: pa.Table, dedup_token: str) -> None:
        """Insert one Arrow table synchronously; a retry with the same token is a no-op. Raises
        StoreError unless the rows are stored (durable against a crash of this process)."""

    def disk_bytes(self) -> int:
        """Bytes the stored data takes on disk (compressed parts)."""

    def watch_free_space(self, min_free_bytes: int) -> None:
        """Refuse inserts (a StoreError, before trying) while the store's disk has less free space."""

    def disk_problem(self) -> str | None:
        """Why the store's disk cannot take writes now (below the floor, read-only), or None."""

    def close(self) -> None: ...


def insert_settings(dedup_token: str) -> dict[str, Any]:
    """Settings every insert uses: synchronous, and deduplicated on retry (views too)."""
    return {
        "async_insert": 0,
        "insert_deduplicate": 1,
        "insert_deduplication_token": dedup_token,
        "deduplicate_blocks_in_dependent_materialized_views": 1,
    }
