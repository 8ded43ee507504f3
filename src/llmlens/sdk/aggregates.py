"""The LLM metrics' single in-process aggregation, shared by the Prometheus and OTLP views.

Why not prometheus_client counters plus OTel SDK instruments: recording one call into both
cost ~40 us of the caller's CPU (the OTel SDK hashes attribute dicts per record). Here a
call is one dict lookup and a few additions under an uncontended lock; the label
projections and OTLP data points are built when someone scrapes or exports, off the hot path.

One `Series` per full attribute key (operation, provider, request model, response model,
server address and port, error type, app, department); values are cumulative since the
process started, so re-init() keeps counting like any Prometheus client would.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from dataclasses import dataclass, field

# OTel GenAI duration buckets (0.01 s .. 81.92 s) extended to ~5 minutes for long generations.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
                    163.84, 327.68)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
MAX_SERIES = 10_000  # attacker-controlled model names must not grow memory without bound
OVERFLOW_KEY = ("_other", "_other", "_other", "_other", "", 0, "", "", "")

Key = tuple[str, str, str, str, str, int, str, str, str]


class Histogram:
    """A cumulative explicit-bucket histogram (bucket i counts values <= bounds[i]; last is +Inf)."""

    __slots__ = ("bounds", "counts", "count", "sum", "min", "max")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def merged_counts(self, other: Histogram | None) -> list[int]:
        return self.counts if other is None else [a + b for a, b in zip(self.counts, other.counts, strict=True)]


class Series:
    __slots__ = ("requests", "unpriced", "cost", "input_tokens", "output_tokens", "duration", "ttft", "input_hist",
                 "output_hist")

    def __init__(self) -> None:
        self.requests = 0
        self.unpriced = 0  # successful calls whose model has no price (failed calls are never priced)
        self.cost = 0.0
        self.input_tokens = 0
        self.output_tokens = 0
        self.duration = Histogram(DURATION_BUCKETS)
        self.ttft: Histogram | None = None
        self.input_hist: Histogram | None = None
        self.output_hist: Histogram | None = None


@dataclass
class Aggregates:
    start_time_ns: int = field(default_factory=time.time_ns)
    series: dict[Key, Series] = field(default_factory=dict)
    scores: dict[tuple[str, str], float] = field(default_factory=dict)  # (app, name) -> last value
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, key: Key, duration_s: float, input_tokens: int, output_tokens: int, cost: float | None,
               ttft_s: float | None, unpriced: bool = False) -> None:
        with self.lock:
            s = self.series.get(key)
            if s is None:
                if len(self.series) >= MAX_SERIES:
                    key = OVERFLOW_KEY
                s = self.series.get(key)
                if s is None:
                    s = self.series[key] = Series()
            s.requests += 1
            if unpriced:
                s.unpriced += 1
            s.duration.observe(duration_s)
            if input_tokens:
                s.input_tokens += input_tokens
                if s.input_hist is None:
                    s.input_hist = Histogram(TOKEN_BUCKETS)
                s.input_hist.observe(input_tokens)
            if output_tokens:
                s.output_tokens += output_tokens
                if s.output_hist is None:
                    s.output_hist = Histogram(TOKEN_BUCKETS)
                s.output_hist.observe(output_tokens)
            if cost:
                s.cost += cost
            if ttft_s is not None:
                if s.ttft is None:
                    s.ttft = Histogram(TTFT_BUCKETS)
                s.ttft.observe(ttft_s)

    def record_score(self, app: str, name: str, value: float) -> None:
        with self.lock:
            self.scores[(app, name)] = value

    def snapshot(self) -> tuple[list[tuple[Key, Series]], dict[tuple[str, str], float]]:
        """A consistent copy to read outside the lock (histograms are copied, not shared)."""
        import copy

        with self.lock:
            return [(k, copy.deepcopy(v)) for k, v in self.series.items()], dict(self.scores)


_lock = threading.Lock()
_aggregates: Aggregates | None = None


def aggregates() -> Aggregates:
    """The process's one aggregation (created on first use, kept across re-init)."""
    global _aggregates
    if _aggregates is None:
        with _lock:
            if _aggregates is None:
                _aggregates = Aggregates()
    return _aggregates
