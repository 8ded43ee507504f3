"""The write-ahead log as a server service: replayed before the server is ready, then exports are
answered once logged (store/wal.py); on stop, everything logged is inserted."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from llmlens.server.receive.pipeline import Ingestor
from llmlens.server.services import Service
from llmlens.server.settings import ServerSettings
from llmlens.server.store import Store
from llmlens.server.store.wal import WriteAheadLog

log = logging.getLogger("llmlens.receive")

FOLDER = "ingest-wal"  # in the data directory


def wal_service(settings: ServerSettings, store: Store, ingestor: Ingestor) -> Service | None:
    """The log's service, and the ingestor set to use it; None when --ingest-wal is off. A ClickHouse
    server is written to without a log (its own inserts are acknowledged as they commit)."""
    if not settings.ingest_wal:
        return None
    if settings.backend != "chdb":
        log.warning("--ingest-wal applies to the embedded store only; exports to ClickHouse are acknowledged "
                    "once committed")
        return None
    wal = WriteAheadLog(Path(settings.data_dir) / FOLDER, store.writer, flush_interval_s=settings.ingest_wal_flush_s,
                        max_bytes=settings.ingest_wal_max_mb * 1024 * 1024,
                        disk_problem=store.backend.disk_problem)

    async def start() -> None:
        rows = await asyncio.to_thread(wal.replay)
        if rows:
            log.warning("inserted %d rows left in the write-ahead log by the last run", rows)
        wal.start()
        ingestor.wal = wal

    async def stop() -> None:  # an export still arriving gets 503: the log is closed
        await asyncio.to_thread(wal.close)

    return Service("write-ahead log", start, stop)
