"""Rows of `trace_index` (one per trace and batch; the table sums them), built where a batch is
normalised (an ingest worker), so the single writer only concatenates them.

Why not materialized views: measured on this machine, two GROUP BY views on every insert cost
15-20% more insert CPU than grouping the same Arrow block here (Arrow's group-by runs in C++)
and inserting the result with the other blocks of the commit. Semantics are the views' were:
spans give times, counts, errors and the root; LLM calls give model calls, tokens and cost.

Session, user, app and department of the trace (SessionId, UserId, App, Department): the context facts
spans set themselves (semconv.context_facts), the root span's where the batch holds it and sets them,
else any span's. An LLM call exported in another request than its request span (a BatchSpanProcessor
exports a child before its parent) reads them here at query time (query/call_context.py).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from llmlens import semconv
from llmlens.semconv import MODEL_OPERATIONS

if TYPE_CHECKING:
    from llmlens.server.store.batch import Batch

TABLE = "trace_index"
_NS = pa.timestamp("ns")
NO_ROOT_NS = 7_258_118_400 * 1_000_000_000  # 2200-01-01: "no root span in this batch"
SCHEMA = pa.schema([
    ("TraceId", pa.string()), ("Day", pa.date32()), ("Start", _NS), ("End", _NS), ("SpanCount", pa.uint64()),
    ("ErrorCount", pa.uint64()), ("RootService", pa.string()), ("RootName", pa.string()), ("RootStart", _NS),
    ("LlmCalls", pa.uint64()), ("InputTokens", pa.uint64()), ("OutputTokens", pa.uint64()), ("CostUsd", pa.float64()),
    ("SessionId", pa.string()), ("UserId", pa.string()), ("App", pa.string()), ("Department", pa.string()),
])
# trace_index column <- context fact (semconv.CONTEXT_FIELDS)
CONTEXT_COLUMNS = {"SessionId": "session_id", "UserId": "user_id", "App": "app", "Department": "department"}


@functools.cache
def _context_keys() -> pa.Array:
    # Made on first use, not on import: pyarrow's first conversion of a list imports pandas (~0.3 s of
    # CPU, ~45 MB), which the server then pays when it first converts data instead of before ready.
    return pa.array(sorted({key for name in semconv.CONTEXT_FIELDS for key in semconv.FIELD_SOURCES[name]}))


def derive(batch: Batch) -> None:
    """The batch's derivation: its trace_index rows, inserted with it."""
    summary = of_batch(batch.arrow)
    if summary is not None:
        batch.arrow[TABLE] = summary


def of_batch(tables: dict[str, pa.Table]) -> pa.Table | None:
    """The trace_index rows summarising a batch's spans and LLM calls, or None if it has neither.

    One group-by over both sources, so a trace gets one row per batch (not one from its spans
    and one from its calls): half the rows to insert and merge, and one Arrow group-by instead
    of two (each costs ~0.3 ms however few the rows).
    """
    parts = []
    if "otel_traces" in tables:
        parts.append(_span_facts(tables["otel_traces"]))
    if "llm_calls" in tables:
        parts.append(_call_facts(tables["llm_calls"]))
    if not parts:
        return None
    work = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
    g = work.group_by("TraceId", use_threads=False).aggregate([
        ("start", "min"), ("end", "max"), ("spans", "sum"), ("error", "sum"), ("root_service", "max"),
        ("root_name", "max"), ("root_start", "min"), ("model_call", "sum"), ("input", "sum"), ("output", "sum"),
        ("cost", "sum"), *((field, "max") for field in CONTEXT_COLUMNS.values()),
    ])
    start_ts = pc.cast(g["start_min"], _NS)
    return pa.Table.from_arrays([
        g["TraceId"], pc.cast(start_ts, pa.date32()), start_ts, pc.cast(g["end_max"], _NS),
        pc.cast(g["spans_sum"], pa.uint64()), pc.cast(g["error_sum"], pa.uint64()), g["root_service_max"],
        g["root_name_max"], pc.cast(g["root_start_min"], _NS), pc.cast(g["model_call_sum"], pa.uint64()),
        pc.cast(g["input_sum"], pa.uint64()), pc.cast(g["output_sum"], pa.uint64()), pc.cast(g["cost_sum"], pa.float64()),
        *(g[f"{field}_max"] for field in CONTEXT_COLUMNS.values()),
    ], schema=SCHEMA)


def _span_facts(spans: pa.Table) -> pa.Table:
    """Per span: its times, a count of one, its error and, for a root, the trace's name."""
    rows = spans.num_rows
    start = pc.cast(spans["Timestamp"], pa.int64())
    is_root = pc.equal(spans["ParentSpanId"], "")
    zeros = pa.repeat(pa.scalar(0, pa.uint64()), rows)
    return pa.table({
        "TraceId": spans["TraceId"],
        "start": start,
        "end": pc.add(start, pc.cast(spans["Duration"], pa.int64())),
        "spans": pa.repeat(pa.scalar(1, pa.uint64()), rows),
        "error": pc.cast(pc.equal(spans["StatusCode"], "Error"), pa.uint64()),
        "root_service": pc.if_else(is_root, spans["ServiceName"], ""),
        "root_name": pc.if_else(is_root, spans["SpanName"], ""),
        "root_start": pc.if_else(is_root, start, NO_ROOT_NS),
        "model_call": zeros, "input": zeros, "output": zeros,
        "cost": pa.repeat(pa.scalar(0.0, pa.float64()), rows),
        **_context(spans),
    })


def _context(spans: pa.Table) -> dict[str, pa.Array]:
    """Per span, per context fact: the value the span sets, kept only on the span that speaks for its
    trace in this batch (the root if it sets the fact, else the first span that does); '' elsewhere.

    Only the context keys' entries of the attribute maps reach Python (found in C with is_in): a span's
    whole map (prompts, documents) never does, and context_facts reads nothing else."""
    rows = spans.num_rows
    offset = 0
    chosen: dict[str, dict[str, tuple[bool, int, str]]] = {}  # field -> trace -> (is root, row, value)
    trace_ids, parents = spans["TraceId"], spans["ParentSpanId"]
    for chunk in spans["SpanAttributes"].chunks:
        offsets = chunk.offsets.to_numpy()
        keys = chunk.keys.slice(offsets[0], offsets[-1] - offsets[0])
        hits = np.flatnonzero(pc.is_in(keys, value_set=_context_keys()).to_numpy(zero_copy_only=False))
        if not len(hits):
            offset += len(chunk)
            continue
        hit_rows = (np.searchsorted(offsets, hits + offsets[0], side="right") - 1 + offset).tolist()
        hit_keys = keys.take(hits).to_pylist()
        hit_values = chunk.items.slice(offsets[0], offsets[-1] - offsets[0]).take(hits).to_pylist()
        own_keys: dict[int, dict[str, str]] = {}
        for row, key, value in zip(hit_rows, hit_keys, hit_values, strict=True):
            own_keys.setdefault(row, {})[key] = value
        found = pa.array(list(own_keys), pa.int64())
        ids = trace_ids.take(found).to_pylist()
        roots = pc.equal(parents.take(found), "").to_pylist()
        for index, trace_id, is_root, attrs in zip(own_keys, ids, roots, own_keys.values(), strict=True):
            own = semconv.context_facts(attrs)
            if not own:
                continue
            for field, value in own.items():
                held = chosen.setdefault(field, {}).get(trace_id)
                if held is None or (is_root and not held[0]):
                    chosen[field][trace_id] = (is_root, index, value)
        offset += len(chunk)
    columns = {}
    for field in CONTEXT_COLUMNS.values():
        values = [""] * rows
        for _, index, value in chosen.get(field, {}).values():
            values[index] = value
        columns[field] = pa.array(values, pa.string()) if field in chosen else pa.repeat(pa.scalar("", pa.string()), rows)
    return columns


def _call_facts(calls: pa.Table) -> pa.Table:
    """Per LLM call: model calls, tokens and cost (its time is its span's, counted there too)."""
    rows = calls.num_rows
    start = pc.cast(calls["Timestamp"], pa.int64())
    zeros = pa.repeat(pa.scalar(0, pa.uint64()), rows)
    empty = pa.repeat(pa.scalar("", pa.string()), rows)
    return pa.table({
        "TraceId": calls["TraceId"],
        "start": start,
        "end": start,
        "spans": zeros,
        "error": zeros,
        "root_service": empty,
        "root_name": empty,
        "root_start": pa.repeat(pa.scalar(NO_ROOT_NS, pa.int64()), rows),
        "model_call": pc.cast(pc.is_in(calls["Operation"], pa.array(MODEL_OPERATIONS)), pa.uint64()),
        "input": calls["InputTokens"],
        "output": calls["OutputTokens"],
        "cost": calls["CostUsd"],
        **{field: empty for field in CONTEXT_COLUMNS.values()},
    })
