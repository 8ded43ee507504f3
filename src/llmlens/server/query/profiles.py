"""Flame graphs from stored profile samples: one service's samples over a time range, optionally
only those taken inside a span (by id, or every span of a name), a trace or a thread; the diff of two
such selections; the services that sent profiles.

Three reads per flame graph: sample counts per stack (the only read that grows with the time range),
then the frame ids of those stacks, then the names of those frames; the tree is built here.

"Inside a span" means in it or in any span below it: llmlens's SDK labels a sample with the innermost
span active on its thread, so the spans below come from the trace (otel_traces). Samples labelled
with a span name (pyroscope-otel's `span_name`) match that name directly.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from llmlens.server.errors import BadParameter
from llmlens.server.query.window import Window
from llmlens.server.store import Store

SAMPLES, STACKS, FRAMES = "llmlens_profile_samples", "llmlens_profile_stacks", "llmlens_profile_frames"
DEFAULT_MAX_NODES = 20_000
MAX_NODES = 200_000
# Frames below this depth are left out of a rendered tree: JSON encoders (Python's, the browser's)
# nest a call per level, and stacks this deep are loops rather than code to read.
MAX_DEPTH = 400
MAX_SPANS = 50_000  # spans of one name followed into their traces
# A profile is stored at the time it began (SDKs send one every ~10 s): a span's samples can sit in a
# profile that began this much before the span.
PROFILE_LEAD = timedelta(seconds=60)
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Selection:
    """Which samples: a service's (every service's when None), in a window, of one profile type, with
    optional filters."""

    service: str | None
    window: Window
    profile_type: str = "process_cpu"
    span_name: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    thread: str | None = None


def hex_id(value: str | None, length: int, parameter: str) -> str | None:
    if value is None or value == "":
        return None
    lowered = value.strip().lower()
    if len(lowered) != length or not set(lowered) <= _HEX:
        raise BadParameter(parameter, f"{parameter} must be {length} hex characters")
    return lowered


async def services(store: Store, window: Window) -> list[dict[str, Any]]:
    rows = await store.fetch(
        f"SELECT ServiceName, ProfileType, sum(Value) AS value, count() AS rows, "
        f"toUnixTimestamp64Milli(min(Timestamp)) AS first_ms, toUnixTimestamp64Milli(max(Timestamp)) AS last_ms "
        f"FROM {SAMPLES} WHERE Timestamp BETWEEN {{start:DateTime64(9)}} AND {{end:DateTime64(9)}} "
        f"GROUP BY ServiceName, ProfileType ORDER BY ServiceName, ProfileType",
        window.params())
    return [{"service": r["ServiceName"], "profile_type": r["ProfileType"], "value": int(r["value"]),
             "first_ms": int(r["first_ms"]), "last_ms": int(r["last_ms"])} for r in rows]


async def flamegraph(store: Store, selection: Selection, max_nodes: int = DEFAULT_MAX_NODES) -> dict[str, Any]:
    counts = await _stack_counts(store, selection)
    stacks, names = await _stacks_and_names(store, counts)
    tree = _tree([(stacks[sid], value) for sid, value in counts.items() if sid in stacks], 1)
    return _render(tree, names, _threshold(tree, max_nodes), lambda n: {"value": n[0], "self": n[1]})


async def diff(store: Store, baseline: Selection, comparison: Selection,
               max_nodes: int = DEFAULT_MAX_NODES) -> dict[str, Any]:
    """One tree over both selections; each node has `baseline` and `comparison` totals and selves.
    `value` is their sum (a node's width when both sides weigh the same; the UI scales each side by
    its total)."""
    base_counts, comp_counts = await asyncio.gather(_stack_counts(store, baseline), _stack_counts(store, comparison))
    stacks, names = await _stacks_and_names(store, {**base_counts, **comp_counts})
    weighted = [(stacks[sid], (v, 0)) for sid, v in base_counts.items() if sid in stacks]
    weighted += [(stacks[sid], (0, v)) for sid, v in comp_counts.items() if sid in stacks]
    tree = _tree(weighted, 2)
    return _render(tree, names, _threshold(tree, max_nodes),
                   lambda n: {"value": n[0] + n[2], "baseline": n[0], "baseline_self": n[1],
                              "comparison": n[2], "comparison_self": n[3]})


# --- samples ------------------------------------------------------------------------------------

async def _stack_counts(store: Store, selection: Selection) -> dict[int, int]:
    where, params = await _sample_filter(store, selection)
    rows = await store.fetch(f"SELECT StackId, sum(Value) AS v FROM {SAMPLES} WHERE {where} GROUP BY StackId", params)
    return {int(r["StackId"]): int(r["v"]) for r in rows if int(r["v"]) > 0}


async def _sample_filter(store: Store, s: Selection) -> tuple[str, dict[str, Any]]:
    where = ["ProfileType = {ptype:String}", "Timestamp BETWEEN {start:DateTime64(9)} AND {end:DateTime64(9)}"]
    params: dict[str, Any] = {"ptype": s.profile_type, **s.window.params()}
    if s.service is not None:
        where.append("ServiceName = {service:String}")
        params["service"] = s.service
    if s.thread:
        where.append("ThreadName = {thread:String}")
        params["thread"] = s.thread
    if s.trace_id:
        where.append("TraceId = {trace_id:String}")
        params["trace_id"] = s.trace_id
    if s.span_id:
        where.append("SpanId IN {span_ids:Array(String)}")
        params["span_ids"] = sorted(await _span_and_below(store, s))
    if s.span_name:
        where.append("(SpanId IN {named_ids:Array(String)} OR SpanName = {span_name:String})")
        params["named_ids"] = sorted(await _spans_named(store, s))
        params["span_name"] = s.span_name
    return " AND ".join(where), params


async def _span_and_below(store: Store, s: Selection) -> set[str]:
    """The span and every span below it in its trace (the span alone when its trace is not stored)."""
    assert s.span_id
    trace_id = s.trace_id
    if trace_id is None:
        rows = await store.fetch(
            f"SELECT any(TraceId) AS t FROM {SAMPLES} WHERE SpanId = {{span_id:String}} AND TraceId != '' "
            "AND Timestamp BETWEEN {start:DateTime64(9)} AND {end:DateTime64(9)}",
            {"span_id": s.span_id, **s.window.params()})
        trace_id = rows[0]["t"] if rows and rows[0]["t"] else None
    if trace_id is None:
        return {s.span_id}
    rows = await store.fetch("SELECT SpanId, ParentSpanId FROM otel_traces WHERE TraceId = {t:String}", {"t": trace_id})
    return _below(rows, [s.span_id])


async def _spans_named(store: Store, s: Selection) -> set[str]:
    """Every span of the name in the service (any service when None) and window, and the spans below them."""
    params = {"service": s.service or "", "name": s.span_name, "start": s.window.params()["start"],
              "end": s.window.params()["end"], "limit": MAX_SPANS}
    of_service = "" if s.service is None else "ServiceName = {service:String} AND "
    named = await store.fetch(
        f"SELECT TraceId, SpanId FROM otel_traces WHERE {of_service}SpanName = {{name:String}} "
        "AND Timestamp BETWEEN {start:DateTime64(9)} - INTERVAL 1 HOUR AND {end:DateTime64(9)} LIMIT {limit:UInt32}",
        params)
    if not named:
        return set()
    rows = await store.fetch(
        "SELECT SpanId, ParentSpanId FROM otel_traces WHERE TraceId IN {traces:Array(String)} "
        "AND Timestamp BETWEEN {start:DateTime64(9)} - INTERVAL 1 HOUR AND {end:DateTime64(9)} + INTERVAL 1 HOUR",
        {**params, "traces": sorted({r["TraceId"] for r in named})})
    return _below(rows, [r["SpanId"] for r in named])


def _below(rows: list[dict[str, Any]], roots: list[str]) -> set[str]:
    children: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        children[row["ParentSpanId"]].append(row["SpanId"])
    found, todo = set(roots), list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


async def _stacks_and_names(store: Store, counts: dict[int, Any]) -> tuple[dict[int, list[int]], dict[int, str]]:
    if not counts:
        return {}, {}
    rows = await store.fetch(f"SELECT StackId, any(FrameIds) AS f FROM {STACKS} "
                             "WHERE StackId IN {ids:Array(UInt64)} GROUP BY StackId", {"ids": list(counts)})
    stacks = {int(r["StackId"]): [int(f) for f in r["f"]] for r in rows}
    frame_ids = sorted({f for frames in stacks.values() for f in frames})
    rows = await store.fetch(f"SELECT FrameId, any(Name) AS n FROM {FRAMES} "
                             "WHERE FrameId IN {ids:Array(UInt64)} GROUP BY FrameId", {"ids": frame_ids})
    return stacks, {int(r["FrameId"]): r["n"] for r in rows}


# --- the tree -----------------------------------------------------------------------------------
# A node is a list: [total, self] per side (one side for a flame graph, two for a diff), then its
# children by frame id.

def _tree(stacks: list[tuple[list[int], Any]], sides: int) -> list:
    root: list = [0] * (2 * sides) + [{}]
    for frames, value in stacks:
        values = (value,) if sides == 1 else value
        node = root
        _add(node, values)
        for frame in frames:
            children = node[-1]
            child = children.get(frame)
            if child is None:
                child = children[frame] = [0] * (2 * sides) + [{}]
            _add(child, values)
            node = child
        for side, v in enumerate(values):
            node[2 * side + 1] += v
    return root


def _add(node: list, values: tuple[int, ...]) -> None:
    for side, v in enumerate(values):
        node[2 * side] += v


def _weight(node: list) -> int:
    return sum(node[0:-1:2])


def _threshold(root: list, max_nodes: int) -> int:
    """The smallest weight a node needs to be kept so that at most `max_nodes` are (a node never
    outweighs its parent, so dropping the light ones drops whole subtrees)."""
    weights: list[int] = []
    todo = [root]
    while todo:
        node = todo.pop()
        for child in node[-1].values():
            weights.append(_weight(child))
            todo.append(child)
    if len(weights) <= max_nodes:
        return 0
    weights.sort(reverse=True)
    return weights[max_nodes - 1] + 1 if weights[max_nodes - 1] == weights[max_nodes] else weights[max_nodes - 1]


def _render(root: list, names: dict[int, str], threshold: int, fields) -> dict[str, Any]:
    """The tree as JSON-ready dicts, heaviest child first, without nodes under `threshold` and past
    MAX_DEPTH (iteratively: stacks can be deeper than Python's recursion limit)."""
    rendered = {"name": "total", **fields(root)}
    rendered.pop("self", None)
    todo = [(root, rendered, 0)]
    while todo:
        node, out, depth = todo.pop()
        kids = [(f, c) for f, c in node[-1].items() if _weight(c) >= threshold] if depth < MAX_DEPTH else []
        kids.sort(key=lambda fc: -_weight(fc[1]))
        out["children"] = []
        for frame, child in kids:
            item = {"name": names.get(frame, f"frame {frame:x}"), **fields(child)}
            out["children"].append(item)
            todo.append((child, item, depth + 1))
    return rendered
