"""Counted once: rows a commit would store again are taken out before it inserts.

Clients resend: an exporter that timed out, or got a 503, sends the same spans again, and a
span that is stored twice doubles requests, tokens and cost everywhere. So the writer, the one
place every row passes, drops before each commit:

- spans whose (trace id, span id) is already stored, or earlier in the same commit, and the LLM
  call rows of those spans (a call row is keyed by its span);
- scores already stored, or earlier in the same commit, with the same trace, span, name and time.

Why at ingest and not at query time (ReplacingMergeTree + FINAL, or uniq over keys): the tables are
then duplicate-free whatever merges have or have not run, every query (and Grafana's, on the raw
tables) stays as it is, and trace_index's per-trace sums never double. The price is one lookup per
commit in otel_traces, bounded by the commit's own span times (a resent span has its original start
time) and the trace-id bloom filter, measured in benchmarks/ingest.py.

Limits, documented in the README: a span id reused with a different start time is a new span;
several server replicas writing one ClickHouse check against what has committed, not against each
other's commits in flight.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from llmlens.server.store.backend import Backend

if TYPE_CHECKING:
    from llmlens.server.store.batch import Batch

_SPANS = "otel_traces"
_CALLS = "llm_calls"
_SCORES = "llm_scores"
REQUEST_DIGESTS = "llmlens_request_digests"
_RANGE_GAP_NS = 60 * 10**9  # span times closer than this share one lookup range
_MAX_RANGES = 16


@dataclass
class StoredKeys:
    """What a commit's look-ups found already stored. Trimming the same batches with the same keys
    again gives the same rows: the write-ahead log records these before inserting, so a replay of a
    commit interrupted part-way builds the very blocks (and tokens) of the first try."""

    spans: set[str] = field(default_factory=set)
    scores: set[str] = field(default_factory=set)
    digests: set[str] = field(default_factory=set)


class Deduplicator:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.dropped_spans = 0
        self.dropped_scores = 0
        self.dropped_requests = 0

    def trim(self, batches: Sequence[Batch], stored: StoredKeys | None = None) -> tuple[pa.Table | None, StoredKeys]:
        """Remove from `batches` (in place) what is stored already or repeated within them; re-run
        the derivations of a batch that lost rows, so its trace_index rows and metric values
        describe exactly what will be committed. Returns the request digests to insert with the
        commit (after its rows), or None, and what the look-ups found (given `stored`, there are no
        look-ups: those keys count as stored)."""
        found = stored or StoredKeys()
        digests = self._trim_resent_requests(batches, None if stored is None else stored.digests, found)
        span_keys = [_keys(b.arrow[_SPANS], ("TraceId", "SpanId")) if _SPANS in b.arrow else None
                     for b in batches]
        score_keys = [_keys(b.arrow[_SCORES], ("TraceId", "SpanId", "Name", "Timestamp"))
                      if _SCORES in b.arrow else None for b in batches]
        if stored is None:
            found.spans = self._stored_spans(batches, span_keys)
            found.scores = self._stored_scores(batches, score_keys)
        stored_spans, stored_scores = found.spans, found.scores
        seen_spans: set[str] = set(stored_spans)
        seen_calls: set[str] = set(stored_spans)  # a stored span's call row is stored with it
        seen_scores: set[str] = set(stored_scores)
        for batch, spans, scores in zip(batches, span_keys, score_keys, strict=True):
            trimmed = False
            if spans is not None:
                keep, repeated = _first_sightings(spans, seen_spans)
                if repeated:
                    trimmed = True
                    self.dropped_spans += len(repeated)
                    batch.arrow[_SPANS] = batch.arrow[_SPANS].filter(pa.array(keep))
            if _CALLS in batch.arrow:
                keep, repeated = _first_sightings(_keys(batch.arrow[_CALLS], ("TraceId", "SpanId")), seen_calls)
                if repeated:
                    trimmed = True
                    batch.arrow[_CALLS] = batch.arrow[_CALLS].filter(pa.array(keep))
            if scores is not None:
                keep, repeated = _first_sightings(scores, seen_scores)
                if repeated:
                    trimmed = True
                    self.dropped_scores += len(repeated)
                    batch.arrow[_SCORES] = batch.arrow[_SCORES].filter(pa.array(keep))
            if trimmed:
                for table in [t for t, data in batch.arrow.items() if data.num_rows == 0]:
                    del batch.arrow[table]
                batch.derive()
        return digests, found

    def _trim_resent_requests(self, batches: Sequence[Batch], stored: set[str] | None,
                              found: StoredKeys) -> pa.Table | None:
        """Empty the batches of log and metric requests committed before (or earlier in this group);
        the digests of the others, as rows of llmlens_request_digests."""
        with_digest = [b for b in batches if b.request_digest and b.row_count]
        if not with_digest:
            return None
        if stored is None:
            rows = self._backend.fetch(f"SELECT Digest FROM {REQUEST_DIGESTS} WHERE Digest IN {{d:Array(String)}}",
                                       {"d": sorted({b.request_digest for b in with_digest})})
            found.digests = {row["Digest"] for row in rows}
        seen = set(found.digests)
        fresh: list[Batch] = []
        for batch in with_digest:
            if batch.request_digest in seen:
                self.dropped_requests += 1
                batch.arrow = {}
                batch.derive()
            else:
                seen.add(batch.request_digest)
                fresh.append(batch)
        if not fresh:
            return None
        now = time.time_ns()
        return pa.table({
            "Timestamp": pa.array([now] * len(fresh), pa.timestamp("ns")),
            "Digest": pa.array([b.request_digest for b in fresh], pa.string()),
            "Signal": pa.array([_signal_of(b) for b in fresh], pa.string()),
        })

    def _stored_spans(self, batches: Sequence[Batch], keys: list[pa.Array | None]) -> set[str]:
        tables = [b.arrow[_SPANS] for b, k in zip(batches, keys, strict=True) if k is not None]
        if not tables:
            return set()
        trace_ids, ranges = _ids_and_ranges(tables)
        when, params = _time_filter(ranges)
        rows = self._backend.fetch(
            f"SELECT concat(TraceId, ':', SpanId) AS k FROM otel_traces WHERE {when} AND TraceId IN {{ids:Array(String)}}",
            {**params, "ids": trace_ids},
        )
        return {row["k"] for row in rows}

    def _stored_scores(self, batches: Sequence[Batch], keys: list[pa.Array | None]) -> set[str]:
        tables = [b.arrow[_SCORES] for b, k in zip(batches, keys, strict=True) if k is not None]
        if not tables:
            return set()
        trace_ids, ranges = _ids_and_ranges(tables)
        when, params = _time_filter(ranges)
        rows = self._backend.fetch(
            "SELECT concat(TraceId, ':', SpanId, ':', Name, ':', toString(toUnixTimestamp64Nano(Timestamp))) AS k "
            f"FROM llm_scores WHERE {when} AND TraceId IN {{ids:Array(String)}}",
            {**params, "ids": trace_ids},
        )
        return {row["k"] for row in rows}


def _signal_of(batch: Batch) -> str:
    if "otel_logs" in batch.arrow:
        return "logs"
    return "profiles" if "llmlens_profile_samples" in batch.arrow else "metrics"


def _keys(table: pa.Table, columns: tuple[str, ...]) -> pa.ChunkedArray:
    """One string key per row: the columns joined with ':' (times as integer nanoseconds)."""
    parts = []
    for name in columns:
        column = table[name]
        if pa.types.is_timestamp(column.type):
            column = pc.cast(pc.cast(column, pa.int64()), pa.string())
        parts.append(column)
    return pc.binary_join_element_wise(*parts, ":")


def _first_sightings(keys: pa.Array | pa.ChunkedArray, seen: set[str]) -> tuple[list[bool], set[str]]:
    """Which rows are seen here first (adding them to `seen`), and the keys that were repeats."""
    keep, repeated = [], set()
    for key in keys.to_pylist():
        if key in seen:
            keep.append(False)
            repeated.add(key)
        else:
            keep.append(True)
            seen.add(key)
    return keep, repeated


def _ids_and_ranges(tables: list[pa.Table]) -> tuple[list[str], list[tuple[int, int]]]:
    """Distinct trace ids of the tables, and their Timestamps (ns) as a few ranges: a lookup over
    [first, last] of a backfill spread over days would read every granule in between."""
    ids: set[str] = set()
    times = []
    for table in tables:
        ids.update(pc.unique(table["TraceId"]).to_pylist())
        times.append(pc.cast(table["Timestamp"], pa.int64()))
    stamps = sorted(pc.unique(pa.chunked_array([c for t in times for c in t.chunks], pa.int64())).to_pylist())
    ranges: list[tuple[int, int]] = []
    for stamp in stamps:
        if ranges and stamp - ranges[-1][1] <= _RANGE_GAP_NS:
            ranges[-1] = (ranges[-1][0], stamp)
        else:
            ranges.append((stamp, stamp))
    while len(ranges) > _MAX_RANGES:  # join the two ranges with the smallest gap between them
        gaps = [ranges[i + 1][0] - ranges[i][1] for i in range(len(ranges) - 1)]
        i = gaps.index(min(gaps))
        ranges[i:i + 2] = [(ranges[i][0], ranges[i + 1][1])]
    return sorted(ids), ranges


def _time_filter(ranges: list[tuple[int, int]]) -> tuple[str, dict[str, int]]:
    """SQL over `Timestamp` for the ranges, and its parameters."""
    clauses, params = [], {}
    for i, (low, high) in enumerate(ranges):
        clauses.append(f"Timestamp BETWEEN fromUnixTimestamp64Nano({{lo{i}:Int64}}) "
                       f"AND fromUnixTimestamp64Nano({{hi{i}:Int64}})")
        params[f"lo{i}"], params[f"hi{i}"] = low, high
    return "(" + " OR ".join(clauses) + ")", params
