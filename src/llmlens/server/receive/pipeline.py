"""decode -> normalise -> store, the same for every transport. Returns what OTLP's
partial_success needs; raises the decode and store errors for the transport to map."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from llmlens.server.normalise import Batch, CostModel, normalise_logs, normalise_metrics, normalise_traces
from llmlens.server.receive.decode import Signal, decode_request
from llmlens.server.store import Store


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    rejected: int
    message: str


class Ingestor:
    def __init__(self, store: Store, cost: CostModel) -> None:
        self.store = store
        self.cost = cost

    def build(self, signal: Signal, body: bytes, kind: Literal["protobuf", "json"]) -> Batch:
        """CPU-bound part (decode + normalise); callers run it off the event loop."""
        return self.from_message(signal, decode_request(signal, body, kind))

    def from_message(self, signal: Signal, message: object) -> Batch:
        if signal == "traces":
            return normalise_traces(message, self.cost)
        if signal == "logs":
            return normalise_logs(message, self.cost)
        return normalise_metrics(message)

    async def ingest(self, signal: Signal, body: bytes, kind: Literal["protobuf", "json"]) -> IngestResult:
        batch = await asyncio.to_thread(self.build, signal, body, kind)
        return await self.commit(batch)

    async def commit(self, batch: Batch) -> IngestResult:
        await self.store.write(batch)
        return IngestResult(batch.accepted, batch.rejected, batch.error_message())
