"""Model calls that wait for their trace's app and department before /metrics counts them.

An app on openai-v2 puts app and department on its request span; its BatchSpanProcessor often
exports the LLM call (a child, which ends first) before that span, in another request. The store's
view completes the call from its trace at query time (query/call_context.py); /metrics cannot relabel
a counter once scraped, so the call waits here instead, as Tempo's service-graph store holds a span
for its other half:

- A model call without app or department, whose trace's root span was not in its batch, waits under
  its trace id up to `wait_s` (derive.py; with the root in the batch, so were the call's ancestors).
- Each committed batch brings the app and department its spans set for their traces (as trace_index
  has them), and which traces' root spans it held; a trace's known values are the largest seen, as
  the store's view takes the max.
- A waiting call is counted as soon as what it lacks is known for its trace, or its trace's root span
  has come (nothing more is expected), with its trace's values; when its wait ends (a sweep every
  ~2 s) or more than `max_pending` wait (the oldest first), it is counted with what is known then
  (llmlens_llm_calls_context_expired_total counts these: a trace whose root never comes, such as one
  started by a caller in another service that exports elsewhere, waits the whole time).
- A trace's values are remembered for `remember_s` after they were last seen, so a call exported
  after its request span finds them at once.

Every call is counted exactly once: at its batch's commit or later, never before. Where /metrics and
the stored view differ: a request span that arrives after the wait (the call was counted with ""),
and a trace whose exports set two different apps after the call was counted.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from llmlens.server.metrics import families as f
from llmlens.server.metrics.deltas import BatchMetrics, WaitingCalls
from llmlens.server.metrics.derive import addresses_column, llm_metrics
from llmlens.server.metrics.registry import Registry

_UNKNOWN = ("", "", False, 0.0)


@dataclass
class _Arrival:
    """One batch's waiting calls; `waiting[i]`: row i is not counted yet."""

    calls: pa.Table
    traces: list[str]
    apps: list[str]  # the calls' own
    departments: list[str]
    waiting: np.ndarray
    expiry: float


class ContextWait:
    def __init__(self, registry: Registry, *, wait_s: float, max_pending: int, remember_s: float = 60.0,
                 max_traces: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._registry = registry
        self._wait = wait_s
        self._max_pending = max_pending
        self._remember = max(remember_s, 2 * wait_s)
        self._max_traces = max_traces
        self._clock = clock
        # trace -> (app, department, root span seen, when last seen), the least recently seen first
        self._known: OrderedDict[str, tuple[str, str, bool, float]] = OrderedDict()
        self._arrivals: deque[_Arrival] = deque()  # oldest first
        self._by_trace: dict[str, list[tuple[_Arrival, int]]] = {}  # trace -> its waiting rows
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        return self._pending

    def add(self, waiting: WaitingCalls) -> None:
        """One committed batch's waiting calls and its traces' app and department."""
        released: list[tuple[_Arrival, list[int]]] = []
        expired = 0
        with self._lock:
            now = self._clock()
            changed = self._learn(waiting.traces, now) if waiting.traces is not None else set()
            for trace in changed & self._by_trace.keys():
                self._release_trace(trace, released)
            if waiting.calls is not None and waiting.calls.num_rows:
                self._arrive(waiting.calls, now, released)
            while self._pending > self._max_pending and self._arrivals:
                expired += self._expire_oldest(released)  # full: the oldest go first
            self._forget(now)
            fills = self._fills(released)
        self._count(released, fills, expired)

    def expire(self) -> None:
        """Count every call that has waited its time (called every ~2 s)."""
        released: list[tuple[_Arrival, list[int]]] = []
        expired = 0
        with self._lock:
            now = self._clock()
            while self._arrivals and self._arrivals[0].expiry <= now:
                expired += self._expire_oldest(released)
            self._forget(now)
            fills = self._fills(released)
        self._count(released, fills, expired)

    # --- under the lock ---------------------------------------------------------------------------

    def _learn(self, traces: pa.Table, now: float) -> set[str]:
        changed = set()
        known = self._known
        for trace, app, department, rooted in zip(traces["TraceId"].to_pylist(), traces["App"].to_pylist(),
                                                  traces["Department"].to_pylist(), traces["Rooted"].to_pylist(),
                                                  strict=True):
            old = known.pop(trace, None)
            if old is None:
                value = (app, department, rooted, now)
                changed.add(trace)
            else:
                value = (max(old[0], app), max(old[1], department), old[2] or rooted, now)
                if value[:3] != old[:3]:
                    changed.add(trace)
            known[trace] = value  # at the end: the most recently seen
        return changed

    def _forget(self, now: float) -> None:
        known = self._known
        while known:
            trace, (_, _, _, seen) = next(iter(known.items()))
            if seen + self._remember > now and len(known) <= self._max_traces:
                break
            del known[trace]

    def _complete(self, arrival: _Arrival, row: int, trace: str) -> bool:
        """The call's trace has what it lacks, or its root span has come (nothing more to wait for)."""
        app, department, rooted, _ = self._known.get(trace, _UNKNOWN)
        return rooted or bool((arrival.apps[row] or app) and (arrival.departments[row] or department))

    def _arrive(self, calls: pa.Table, now: float, released: list[tuple[_Arrival, list[int]]]) -> None:
        traces = calls["TraceId"].to_pylist()
        arrival = _Arrival(calls, traces, calls["App"].to_pylist(), calls["Department"].to_pylist(),
                           np.ones(len(traces), dtype=bool), now + self._wait)
        ready = [row for row, trace in enumerate(traces) if trace in self._known and self._complete(arrival, row, trace)]
        if ready:
            arrival.waiting[ready] = False
            released.append((arrival, ready))
        left = len(traces) - len(ready)
        if left:
            for row in np.flatnonzero(arrival.waiting).tolist():
                self._by_trace.setdefault(traces[row], []).append((arrival, row))
            self._arrivals.append(arrival)
            self._pending += left

    def _release_trace(self, trace: str, released: list[tuple[_Arrival, list[int]]]) -> None:
        rows = self._by_trace.pop(trace)
        still = []
        for arrival, row in rows:
            if not arrival.waiting[row]:
                continue
            if self._complete(arrival, row, trace):
                arrival.waiting[row] = False
                self._pending -= 1
                released.append((arrival, [row]))
            else:
                still.append((arrival, row))
        if still:
            self._by_trace[trace] = still

    def _expire_oldest(self, released: list[tuple[_Arrival, list[int]]]) -> int:
        arrival = self._arrivals.popleft()
        rows = np.flatnonzero(arrival.waiting).tolist()
        if not rows:
            return 0
        arrival.waiting[:] = False
        self._pending -= len(rows)
        for trace in {arrival.traces[row] for row in rows}:
            left = [(a, r) for a, r in self._by_trace.get(trace, ()) if a is not arrival]
            if left:
                self._by_trace[trace] = left
            else:
                self._by_trace.pop(trace, None)
        released.append((arrival, rows))
        return len(rows)

    def _fills(self, released: list[tuple[_Arrival, list[int]]]) -> list[tuple[list[str], list[str]]]:
        """Per released part: the app and department its rows' traces have, to fill what they lack."""
        known = self._known
        fills = []
        for arrival, rows in released:
            values = [known.get(arrival.traces[row], _UNKNOWN) for row in rows]
            fills.append(([v[0] for v in values], [v[1] for v in values]))
        return fills

    # --- outside the lock -------------------------------------------------------------------------

    def _count(self, released: list[tuple[_Arrival, list[int]]], fills: list[tuple[list[str], list[str]]],
               expired: int) -> None:
        if not released and not expired:
            return
        out = BatchMetrics()
        if released:
            parts = []
            for (arrival, rows), (apps, departments) in zip(released, fills, strict=True):
                part = arrival.calls.take(pa.array(rows, pa.int64()))
                for column, values in (("App", apps), ("Department", departments)):
                    own = part[column]
                    filled = pc.if_else(pc.equal(own, ""), pa.chunked_array([values], pa.string()), own)
                    part = part.set_column(part.schema.get_field_index(column), column, filled)
                parts.append(part)
            calls = pa.concat_tables(parts)
            llm_metrics(calls, addresses_column(calls), out)
        if expired:
            out.counter(f.LLM_CONTEXT_EXPIRED.name)[()] = float(expired)
        self._registry.merge(out)
