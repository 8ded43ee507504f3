"""What one batch adds to the metrics: small, picklable values built where the batch is built (an
ingest worker) and merged after its commit (the server process)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

Labels = tuple[str, ...]
Exemplar = tuple[str, str, float]  # trace id, span id, value


@dataclass
class HistogramDelta:
    counts: list[int]  # observations per bucket (not cumulative), one more than the bounds (+Inf)
    total: float  # sum of the observed values
    exemplars: dict[int, Exemplar] = field(default_factory=dict)  # bucket -> one observation in it
    # While a derivation builds it: bucket -> (row, value), named by batch_groups.name_exemplars.
    exemplar_rows: dict[int, tuple[int, float]] = field(default_factory=dict)


@dataclass
class HalfChunk:
    """One batch's client (or server) spans waiting to be paired into service-graph edges, as columns.

    `keys` are what pairs two halves: trace id + the client's own span id, or trace id + the server's
    parent span id (Tempo's rule: a server span pairs with its direct parent). `peers` name the
    virtual node a client nobody answered becomes (empty for servers, and for clients with nothing
    to name it by)."""

    keys: list[str]
    service: np.ndarray  # per span: index into services
    services: list[str]
    peer: np.ndarray  # per span: index into peers
    peers: list[str]
    messaging: np.ndarray  # bool: PRODUCER or CONSUMER
    failed: np.ndarray  # bool: status ERROR
    seconds: np.ndarray  # float64 durations

    def __len__(self) -> int:
        return len(self.keys)

    def label(self, i: int) -> tuple[str, str, bool]:
        """(service, peer, messaging) of the i-th span."""
        return self.services[self.service[i]], self.peers[self.peer[i]], bool(self.messaging[i])


@dataclass
class WaitingCalls:
    """Model calls of a batch that lack app or department, not yet counted (derive.WAITING_COLUMNS and
    their server address), and the app and department the batch's spans set for their traces
    (TraceId, App, Department): both go to the server process's context wait (context_wait.py)."""

    calls: pa.Table | None
    traces: pa.Table | None


@dataclass
class BatchMetrics:
    counters: dict[str, dict[Labels, float]] = field(default_factory=dict)
    histograms: dict[str, dict[Labels, HistogramDelta]] = field(default_factory=dict)
    latest: dict[str, dict[Labels, tuple[int, float]]] = field(default_factory=dict)  # gauges: (time ns, value)
    clients: HalfChunk | None = None
    servers: HalfChunk | None = None
    waiting: WaitingCalls | None = None

    def counter(self, family: str) -> dict[Labels, float]:
        return self.counters.setdefault(family, {})

    def histogram(self, family: str) -> dict[Labels, HistogramDelta]:
        return self.histograms.setdefault(family, {})

    def __bool__(self) -> bool:
        return bool(self.counters or self.histograms or self.latest or self.clients or self.servers or self.waiting)
