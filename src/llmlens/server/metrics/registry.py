"""The cumulative series behind /metrics: counters, histograms (with one exemplar a bucket) and
last-value gauges, keyed by family and label values.

Every family holds at most `max_series` label sets; samples for a new label set past that go to
one series whose every label is `__overflow__`, and `llmlens_metrics_overflow_total{family}`
counts them. Writers (the commit listener on the writer thread, the service-graph sweep, the
request timing middleware) and scrapes take one lock; a scrape copies under it and renders
outside it, so a slow scrape never holds up a commit. Values restart at zero with the process,
as Prometheus expects of counters.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from llmlens.server.metrics.deltas import BatchMetrics, Exemplar, HistogramDelta, Labels
from llmlens.server.metrics.families import OVERFLOWED, Family


@dataclass
class HistogramValue:
    counts: list[int]  # per bucket, not cumulative; the last is +Inf
    total: float = 0.0
    exemplars: list[Exemplar | None] = field(default_factory=list)  # one slot per bucket

    @property
    def count(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class FamilySnapshot:
    family: Family
    series: list[tuple[Labels, float | HistogramValue]]


class Registry:
    def __init__(self, families: Iterable[Family], max_series: int) -> None:
        self.families = {family.name: family for family in families}
        self.max_series = max_series
        self._series: dict[str, dict[Labels, object]] = {name: {} for name in self.families}
        self._latest_at: dict[tuple[str, Labels], int] = {}  # gauges: time of the value shown
        self._overflowed: dict[str, float] = {}
        self._lock = threading.Lock()

    # --- writing (callers hold no lock) ----------------------------------------------------------

    def merge(self, delta: BatchMetrics) -> None:
        """Add one batch's deltas (counters, histograms, newest gauge values)."""
        with self._lock:
            for name, series in delta.counters.items():
                for labels, value in series.items():
                    self._add(name, labels, value)
            for name, hists in delta.histograms.items():
                for labels, hist in hists.items():
                    self._merge_histogram(name, labels, hist)
            for name, values in delta.latest.items():
                for labels, (at, value) in values.items():
                    self._set_latest(name, labels, at, value)

    def add(self, family: Family, labels: Labels, value: float) -> None:
        with self._lock:
            self._add(family.name, labels, value)

    def add_many(self, family: Family, values: Mapping[Labels, float]) -> None:
        with self._lock:
            for labels, value in values.items():
                self._add(family.name, labels, value)

    def observe(self, family: Family, labels: Labels, value: float) -> None:
        """One observation into a histogram (the server's own timings)."""
        counts = [0] * (len(family.buckets) + 1)
        counts[bisect_left(family.buckets, value)] = 1
        with self._lock:
            self._merge_histogram(family.name, labels, HistogramDelta(counts, value))

    def merge_histograms(self, family: Family, values: Mapping[Labels, HistogramDelta]) -> None:
        with self._lock:
            for labels, delta in values.items():
                self._merge_histogram(family.name, labels, delta)

    def count_overflow(self, family_name: str, samples: float) -> None:
        """Samples of a family kept elsewhere (the re-exposed OTLP metrics) that its cap turned away."""
        with self._lock:
            self._overflowed[family_name] = self._overflowed.get(family_name, 0.0) + samples

    # --- reading -----------------------------------------------------------------------------------

    def snapshot(self) -> list[FamilySnapshot]:
        """A copy of every family's series (histograms copied: the writers keep adding)."""
        with self._lock:
            out = []
            for name, family in self.families.items():
                series = self._series[name]
                if family.kind == "histogram":
                    items = [(labels, HistogramValue(list(h.counts), h.total, list(h.exemplars)))  # type: ignore[attr-defined]
                             for labels, h in series.items()]
                else:
                    items = list(series.items())  # type: ignore[arg-type]
                out.append(FamilySnapshot(family, items))
            out.append(FamilySnapshot(OVERFLOWED, [((name,), value) for name, value in self._overflowed.items()]))
            return out

    def series_count(self, family: Family) -> int:
        with self._lock:
            return len(self._series[family.name])

    # --- under the lock ---------------------------------------------------------------------------------

    def _slot(self, name: str, labels: Labels, samples: float) -> Labels:
        """The labels to file under: `labels`, or the overflow series when the family is full."""
        series = self._series[name]
        if labels in series or len(series) < self.max_series:
            return labels
        self._overflowed[name] = self._overflowed.get(name, 0.0) + samples
        return self.families[name].overflow_labels

    def _add(self, name: str, labels: Labels, value: float) -> None:
        series = self._series[name]
        labels = self._slot(name, labels, 1)
        series[labels] = series.get(labels, 0.0) + value  # type: ignore[operator]

    def _merge_histogram(self, name: str, labels: Labels, delta: HistogramDelta) -> None:
        series = self._series[name]
        labels = self._slot(name, labels, sum(delta.counts))
        have = series.get(labels)
        if have is None:
            have = series[labels] = HistogramValue([0] * len(delta.counts), 0.0, [None] * len(delta.counts))
        assert isinstance(have, HistogramValue)
        counts = have.counts
        for bucket, n in enumerate(delta.counts):
            if n:
                counts[bucket] += n
        have.total += delta.total
        for bucket, exemplar in delta.exemplars.items():
            have.exemplars[bucket] = exemplar  # the newest: a scrape shows a recent trace

    def _set_latest(self, name: str, labels: Labels, at: int, value: float) -> None:
        series = self._series[name]
        labels = self._slot(name, labels, 1)
        key = (name, labels)
        if at >= self._latest_at.get(key, at):
            series[labels] = value
            self._latest_at[key] = at
