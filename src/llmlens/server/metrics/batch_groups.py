"""Group-bys over one batch's rows in Arrow and NumPy: group ids, per-group histograms with one
exemplar a bucket, and attribute look-ups.

A batch holds hundreds of rows and a handful of label sets, and this runs once per batch on every
span the server receives: each step is one vectorised pass over the rows; strings are turned into
integer codes once (Arrow's dictionary encoding) and NumPy works on the codes; Python loops only
over groups and occupied buckets, never per span; and the number of Arrow calls is kept small
(each costs microseconds however few the rows).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from llmlens.server.metrics.deltas import HistogramDelta

# Joins a row's label values into one string to group by. A unit separator: no span, service or
# model name carries one (two label sets that did would share a series, nothing worse).
_SEPARATOR = "\x1f"
ArrowColumn = pa.Array | pa.ChunkedArray


@dataclass(frozen=True)
class Groups:
    ids: np.ndarray  # the group of each row
    keys: list[tuple[str, ...]]  # the label values of each group

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class Encoded:
    """A string column as codes: `values[codes[row]]` is the row's value."""

    codes: np.ndarray
    values: list[str]


def whole(column: ArrowColumn) -> pa.Array:
    """One Array (a table's column is chunked; most hold one chunk, taken without a copy)."""
    if isinstance(column, pa.ChunkedArray):
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column


def encode(column: ArrowColumn) -> Encoded:
    encoded = pc.dictionary_encode(whole(column))
    return Encoded(encoded.indices.to_numpy(zero_copy_only=False).astype(np.intp), encoded.dictionary.to_pylist())


def group_rows(columns: Sequence[ArrowColumn]) -> Groups:
    """Rows grouped by the values of `columns` (string columns of equal length)."""
    arrays = [whole(c) for c in columns]
    joined = arrays[0] if len(arrays) == 1 else pc.binary_join_element_wise(*arrays, _SEPARATOR)
    encoded = encode(joined)
    keys = ([(v,) for v in encoded.values] if len(arrays) == 1
            else [tuple(v.split(_SEPARATOR)) for v in encoded.values])
    return Groups(encoded.codes, keys)


def group_codes(*codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense group ids of rows given integer codes per label, and each group's first row."""
    combined = codes[0].astype(np.int64)
    for code in codes[1:]:
        combined = combined * (int(code.max()) + 1) + code
    span = int(combined.max()) + 1
    if span > 4 * len(combined) + 1024:  # sparse: sort
        _, first, ids = np.unique(combined, return_index=True, return_inverse=True)
        return ids.reshape(-1), first
    # Dense (the usual case: a few services, names, kinds): a table over the combined codes, no sort.
    first_at = np.full(span, len(combined), dtype=np.intp)
    first_at[combined[::-1]] = np.arange(len(combined) - 1, -1, -1)  # reversed: the first row wins
    present = np.flatnonzero(first_at < len(combined))
    dense = np.empty(span, dtype=np.intp)
    dense[present] = np.arange(present.size)
    return dense[combined], first_at[present]


def histograms(groups: Groups, values: np.ndarray, bounds: np.ndarray, *, rows: np.ndarray | None = None,
               exemplars: bool = True) -> dict[int, HistogramDelta]:
    """Per group with observations: counts per bucket (value <= bound, as Prometheus's `le`) and the
    sum; with `exemplars`, one per occupied bucket, as a row that `name_exemplars` then names.
    `rows` restricts to some rows (indices)."""
    ids = groups.ids if rows is None else groups.ids[rows]
    observed = values if rows is None else values[rows]
    if not len(ids):
        return {}
    width = len(bounds) + 1
    cells = ids * width + np.searchsorted(bounds, observed, side="left")
    counts = np.bincount(cells, minlength=len(groups) * width)
    totals = np.bincount(ids, weights=observed, minlength=len(groups))
    per_group = counts.reshape(len(groups), width)
    out = {g: HistogramDelta(per_group[g].tolist(), float(totals[g]))
           for g in np.flatnonzero(per_group.any(axis=1)).tolist()}
    if exemplars:
        # The first observation of each occupied cell: assigning in reverse leaves the first one.
        first = np.full(counts.size, -1, dtype=np.intp)
        first[cells[::-1]] = np.arange(len(cells) - 1, -1, -1)
        occupied = np.flatnonzero(first >= 0)
        taken = first[occupied]
        source = taken if rows is None else rows[taken]
        for cell, row, value in zip(occupied.tolist(), source.tolist(), observed[taken].tolist(), strict=True):
            out[cell // width].exemplar_rows[cell % width] = (row, value)
    return out


def name_exemplars(deltas: Sequence[dict[int, HistogramDelta]], trace_ids: ArrowColumn,
                   span_ids: ArrowColumn) -> None:
    """Replace the rows `histograms` put in exemplars by those rows' trace and span ids (one take
    per column for every histogram of a table)."""
    wanted = sorted({row for d in deltas for h in d.values() for row, _ in h.exemplar_rows.values()})
    if not wanted:
        return
    traces, spans = whole(trace_ids), whole(span_ids)
    if len(wanted) <= 32:  # a few buckets: single values are cheaper than a take
        trace = {row: traces[row].as_py() for row in wanted}
        span = {row: spans[row].as_py() for row in wanted}
    else:
        taken = pa.array(wanted, pa.int64())
        trace = dict(zip(wanted, traces.take(taken).to_pylist(), strict=True))
        span = dict(zip(wanted, spans.take(taken).to_pylist(), strict=True))
    for d in deltas:
        for h in d.values():
            h.exemplars = {b: (trace[row], span[row], value) for b, (row, value) in h.exemplar_rows.items()}
            h.exemplar_rows = {}


def sums(groups: Groups, values: np.ndarray) -> np.ndarray:
    return np.bincount(groups.ids, weights=values, minlength=len(groups))


@dataclass(frozen=True)
class Found:
    """Where some attribute names occur in a batch's rows, their (non-empty) values as codes into
    `values`: per name, the rows that have it and each one's code."""

    size: int  # rows in the batch
    values: list[str]
    at: dict[str, tuple[np.ndarray, np.ndarray]]

    def any_of(self, names: Sequence[str]) -> np.ndarray:
        """Per row: has it any of `names`?"""
        mask = np.zeros(self.size, dtype=bool)
        for name in names:
            if name in self.at:
                mask[self.at[name][0]] = True
        return mask

    def first_of(self, names: Sequence[str], rows: np.ndarray) -> np.ndarray:
        """For the rows at `rows`: the code of the first of `names` each has, else -1."""
        out = np.full(rows.size, -1, dtype=np.intp)
        present = [name for name in names if name in self.at]
        if not present:
            return out
        position = np.full(self.size, -1, dtype=np.intp)
        position[rows] = np.arange(rows.size)
        for name in reversed(present):
            where, codes = self.at[name]
            mine = position[where]
            kept = mine >= 0
            out[mine[kept]] = codes[kept]
        return out

    def names_of(self, codes: np.ndarray, absent: str) -> Encoded:
        """Codes from first_of as an Encoded column, `absent` standing for -1."""
        return Encoded(np.where(codes < 0, len(self.values), codes), [*self.values, absent])


def lookup(maps: ArrowColumn, names: Sequence[str]) -> Found:
    """Where `names` occur in a Map(String, String) column: one hash look-up per map entry for all the
    names together (pyarrow's map_lookup costs a pass per name and ~4x more), and the values found
    dictionary-encoded (no Python string per value)."""
    array = whole(maps)
    offsets = array.offsets.to_numpy()
    start, end = int(offsets[0]), int(offsets[-1])  # a sliced map array keeps its parent's entries
    which = pc.index_in(array.keys.slice(start, end - start), value_set=_value_set(tuple(names)))
    which = which.to_numpy(zero_copy_only=False)  # floats, NaN where absent (cheaper than fill_null)
    hit = np.flatnonzero(which >= 0)
    if not hit.size:
        return Found(len(array), [], {})
    rows = np.searchsorted(offsets, hit + start, side="right") - 1
    values = encode(array.items.slice(start, end - start).take(pa.array(hit)))
    named = which[hit].astype(np.intp)
    kept = named >= 0
    if "" in values.values:  # an empty value counts as absent
        kept &= values.codes != values.values.index("")
    at = {}
    for index in np.flatnonzero(np.bincount(named[kept], minlength=len(names))).tolist():
        chosen = kept & (named == index)
        at[names[index]] = (rows[chosen], values.codes[chosen])
    return Found(len(array), values.values, at)


@functools.lru_cache(maxsize=16)
def _value_set(names: tuple[str, ...]) -> pa.Array:
    return pa.array(names, pa.string())
