"""Service-graph edges from client and server spans that arrive apart: Tempo's pairing, in one place
in the server process.

A CLIENT (or PRODUCER) span waits keyed by (trace id, its own span id), a SERVER (or CONSUMER) span
by (trace id, its parent's span id): a server span pairs with its direct parent. When both halves
are here the edge completes: client -> server, failed when either side's status is ERROR, the
server span's duration as server latency and the client's as client latency. Halves arrive from
every ingest worker, batch after batch, in any order.

A half that waited `wait_s` without its other half expires (a sweep every ~2 s), as does the oldest
when more than `max_pending` wait: a client span with a peer name (peer.service, a database, the
GenAI provider, the server's address) becomes an edge to that virtual node; every expired half is
counted in traces_service_graph_unpaired_spans_total. (Database calls and root server spans never
wait: derive.py makes their edges at once.)

Halves come and go a batch at a time: one batch's halves are one HalfChunk, registered in the
pending maps (key -> an integer id) and expired chunk by chunk, with counts and histograms of what
expired computed with NumPy over the chunk; Python touches each half only through C-level dict
operations, except the ones that pair.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from typing import Protocol

import numpy as np

from llmlens.server.metrics import families as f
from llmlens.server.metrics.deltas import BatchMetrics, HalfChunk, HistogramDelta
from llmlens.server.metrics.derive import add_edge
from llmlens.server.metrics.registry import Registry

VIRTUAL = "virtual_node"
MESSAGING = "messaging_system"
_BOUNDS = np.array(f.SERVICE_GRAPH_BUCKETS)


@dataclass
class _Arrival:
    """One batch's halves of one side, and how many of them still wait."""

    chunk: HalfChunk
    base: int  # the halves' ids are base, base + 1, ...
    is_client: bool
    expiry: float
    waiting: int


class ServiceGraph:
    def __init__(self, registry: Registry, *, wait_s: float, max_pending: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._registry = registry
        self._wait = wait_s
        self._max_pending = max_pending
        self._clock = clock
        # Waiting halves: key -> half id (ints: no object per half for the garbage collector to visit).
        self._clients: dict[str, int] = {}
        self._servers: dict[str, int] = {}
        self._arrivals: deque[_Arrival] = deque()  # oldest first
        self._bases: list[int] = []  # each arrival's base, to find a half's arrival by its id
        self._next_id = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        return len(self._clients) + len(self._servers)

    def add(self, clients: HalfChunk | None, servers: HalfChunk | None) -> None:
        """Halves of one committed batch: pair what can be paired, keep the rest waiting."""
        edges = BatchMetrics()
        with self._lock:
            now = self._clock()
            if clients is not None and len(clients):
                self._arrive(clients, True, now, edges)
            if servers is not None and len(servers):
                self._arrive(servers, False, now, edges)
            while self.pending > self._max_pending and self._arrivals:
                self._expire_oldest(edges)  # full: the oldest go first, as if their time had come
        if edges:
            self._registry.merge(edges)

    def expire(self) -> None:
        """Expire every half that has waited its time (called every ~2 s)."""
        edges = BatchMetrics()
        with self._lock:
            now = self._clock()
            while self._arrivals and self._arrivals[0].expiry <= now:
                self._expire_oldest(edges)
        if edges:
            self._registry.merge(edges)

    # --- under the lock ---------------------------------------------------------------------------

    def _arrive(self, chunk: HalfChunk, is_client: bool, now: float, edges: BatchMetrics) -> None:
        mine, theirs = (self._clients, self._servers) if is_client else (self._servers, self._clients)
        arrival = _Arrival(chunk, self._next_id, is_client, now + self._wait, len(chunk))
        self._next_id += len(chunk)
        matched = theirs.keys() & chunk.keys if theirs else ()
        mine.update(zip(chunk.keys, range(arrival.base, self._next_id), strict=True))
        self._arrivals.append(arrival)
        self._bases.append(arrival.base)
        for key in matched:
            other_id = theirs.pop(key)
            self._paired(arrival, mine.pop(key) - arrival.base, self._arrival_of(other_id), other_id, edges)

    def _arrival_of(self, half_id: int) -> _Arrival:
        return self._arrivals[bisect_right(self._bases, half_id) - 1]

    def _paired(self, arrival: _Arrival, i: int, other: _Arrival, other_id: int, edges: BatchMetrics) -> None:
        j = other_id - other.base
        (client, c), (server, s) = ((arrival.chunk, i), (other.chunk, j)) if arrival.is_client else \
            ((other.chunk, j), (arrival.chunk, i))
        client_service, server_service = client.services[client.service[c]], server.services[server.service[s]]
        connection = MESSAGING if client.messaging[c] or server.messaging[s] else ""
        failed = bool(client.failed[c] or server.failed[s])
        add_edge(edges, (client_service, server_service, connection), 1.0, float(failed),
                 _one(float(server.seconds[s])), _one(float(client.seconds[c])))
        arrival.waiting -= 1
        other.waiting -= 1

    def _expire_oldest(self, edges: BatchMetrics) -> None:
        arrival = self._arrivals.popleft()
        self._bases.pop(0)
        if not arrival.waiting:
            return  # every half was paired
        chunk, n = arrival.chunk, len(arrival.chunk)
        pending = self._clients if arrival.is_client else self._servers
        ids = np.fromiter(map(pending.get, chunk.keys, repeat(-1)), np.int64, n)
        alive = np.flatnonzero(ids == arrival.base + np.arange(n))  # still waiting, and not a later half's key
        if alive.size:
            keys = chunk.keys
            deque(map(pending.pop, [keys[i] for i in alive.tolist()]), maxlen=0)
            _expired(chunk, alive, arrival.is_client, edges)


def _expired(chunk: HalfChunk, rows: np.ndarray, is_client: bool, edges: BatchMetrics) -> None:
    """Count the expired halves at `rows`; clients with a peer name become edges to a virtual node."""
    label = chunk.service[rows].astype(np.int64) * len(chunk.peers) + chunk.peer[rows]
    expired = np.bincount(label)
    unpaired = edges.counter(f.EDGE_UNPAIRED.name)
    for code in np.flatnonzero(expired).tolist():
        service, peer = chunk.services[code // len(chunk.peers)], chunk.peers[code % len(chunk.peers)]
        key = (service, "") if is_client else ("", service)
        unpaired[key] = unpaired.get(key, 0.0) + float(expired[code])
        if is_client and peer:
            mine = rows[label == code]
            seconds = chunk.seconds[mine]
            counts = np.bincount(np.searchsorted(_BOUNDS, seconds, side="left"), minlength=len(_BOUNDS) + 1)
            latency = HistogramDelta(counts.tolist(), float(seconds.sum()))
            add_edge(edges, (service, peer, VIRTUAL), float(mine.size), float(chunk.failed[mine].sum()), latency,
                     HistogramDelta(list(latency.counts), latency.total))


def _one(seconds: float) -> HistogramDelta:
    counts = [0] * (len(_BOUNDS) + 1)
    counts[int(np.searchsorted(_BOUNDS, seconds, side="left"))] = 1
    return HistogramDelta(counts, seconds)


class Expiring(Protocol):
    def expire(self) -> None: ...


class ExpirySweep:
    """Calls `graph.expire()` every `interval_s` on a thread of its own, between start and stop (the
    service graph's, and the one of calls waiting for their context: context_wait.py)."""

    def __init__(self, graph: Expiring, interval_s: float = 2.0) -> None:
        self._graph = graph
        self._interval = interval_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="llmlens-service-graph", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self._graph.expire()
