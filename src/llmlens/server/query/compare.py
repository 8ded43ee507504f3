"""Two traces side by side, and the "typical" trace of a root span to compare one with.

The span trees are aligned top down: the roots with each other, then at every level the children
of a matched pair by (service, name, occurrence among siblings of that service and name, in start
order); a model call named "chat gpt-4o" is matched by its operation, so it meets "chat gpt-4o-mini".
The alignment is deterministic and needs no similarity scores: the second "retrieve" under
a "rag answer" meets the second "retrieve" of the other trace. A span without a counterpart is
marked as only in one trace, and so is its whole subtree.
"""

from __future__ import annotations

import asyncio
import difflib
import json
from collections.abc import Iterable
from typing import Any

from llmlens.semconv import MODEL_OPERATIONS
from llmlens.server.query import traces as traces_query
from llmlens.server.query.window import Window
from llmlens.server.store import Store

# Attributes that are request parameters of an LLM call, whatever the convention.
_PARAMETER_PREFIXES = ("gen_ai.request.", "llm.request.")
_PARAMETER_JSON = ("llm.invocation_parameters", "embedding.invocation_parameters")
_NOT_PARAMETERS = {"gen_ai.request.model", "llm.request.model", "gen_ai.request.stream"}
_DIFF_CONTEXT_LINES = 3
_MAX_DIFF_LINES = 400


class TraceNotFound(LookupError):
    """One of the compared traces is not stored; ``side`` is "a" or "b"."""

    def __init__(self, side: str, trace_id: str) -> None:
        super().__init__(f"no trace {trace_id} (it may not have arrived yet)")
        self.side = side


async def compare_traces(store: Store, trace_a: str, trace_b: str) -> dict[str, Any]:
    a, b = await asyncio.gather(traces_query.get_trace(store, trace_a), traces_query.get_trace(store, trace_b))
    for side, trace, trace_id in (("a", a, trace_a), ("b", b, trace_b)):
        if trace is None:
            raise TraceNotFound(side, trace_id)
    rows = align(a["spans"], b["spans"])
    summary_a, summary_b = _summary(a["trace_id"], _Tree(a["spans"])), _summary(b["trace_id"], _Tree(b["spans"]))
    difference = _differences(summary_a, summary_b, ("duration_ms", "span_count", "error_count", "llm_calls",
                                                     "input_tokens", "output_tokens", "cost_usd"))
    if summary_a["unpriced_calls"] or summary_b["unpriced_calls"]:
        difference["cost_usd"] = None  # a sum without the unpriced calls' cost is no cost to subtract
    return {
        "a": summary_a,
        "b": summary_b,
        "difference": difference,
        "counts": {"matched": sum(r["match"] == "both" for r in rows),
                   "only_a": sum(r["match"] == "only_a" for r in rows),
                   "only_b": sum(r["match"] == "only_b" for r in rows)},
        "rows": rows,
    }


class _Tree:
    """One trace's spans as a tree: roots and children in start order, offsets from the trace start."""

    def __init__(self, spans: list[dict[str, Any]]) -> None:
        self.start_ns = min(s["start_unix_nano"] for s in spans)
        ids = {s["span_id"] for s in spans}
        self.children: dict[str, list[dict[str, Any]]] = {}
        self.roots: list[dict[str, Any]] = []
        for span in sorted(spans, key=lambda s: (s["start_unix_nano"], s["span_id"])):
            parent = span["parent_span_id"]
            if parent and parent in ids and parent != span["span_id"]:
                self.children.setdefault(parent, []).append(span)
            else:
                self.roots.append(span)
        self.spans = spans

    def kids(self, span: dict[str, Any] | None) -> list[dict[str, Any]]:
        return self.children.get(span["span_id"], []) if span else []


def align(spans_a: list[dict[str, Any]], spans_b: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of two traces' aligned span trees (spans as get_trace returns them), depth first."""
    tree_a, tree_b = _Tree(spans_a), _Tree(spans_b)
    rows: list[dict[str, Any]] = []
    _align(tree_a, tree_b, tree_a.roots, tree_b.roots, 0, rows)
    return rows


def _match_name(span: dict[str, Any]) -> str:
    """The name a span is matched by: a model call named "{operation} {model}" (the GenAI convention)
    by its operation alone, so that a call to another model still meets its counterpart."""
    if _is_model_call(span):
        operation = span["llm"]["operation"]
        if span["name"] == operation or span["name"].startswith(operation + " "):
            return operation + " …"
    return span["name"]


def _keyed(spans: Iterable[dict[str, Any]]) -> list[tuple[tuple[str, str, int], dict[str, Any]]]:
    seen: dict[tuple[str, str], int] = {}
    keyed = []
    for span in spans:
        base = (span["service"], _match_name(span))
        seen[base] = seen.get(base, 0) + 1
        keyed.append(((*base, seen[base] - 1), span))
    return keyed


def _align(tree_a: _Tree, tree_b: _Tree, spans_a: list[dict[str, Any]], spans_b: list[dict[str, Any]],
           depth: int, rows: list[dict[str, Any]]) -> None:
    """Append the aligned rows of two sibling lists (and their subtrees) in A's order, a span only in
    B placed after the B sibling before it."""
    keyed_a, keyed_b = _keyed(spans_a), _keyed(spans_b)
    in_a, in_b = dict(keyed_a), dict(keyed_b)
    position_a = {key: i for i, (key, _) in enumerate(keyed_a)}
    order: list[tuple[float, int, tuple[str, str, int]]] = [(i, 0, key) for i, (key, _) in enumerate(keyed_a)]
    anchor = -1.0
    for j, (key, _) in enumerate(keyed_b):
        if key in in_a:
            anchor = float(position_a[key])
        else:
            order.append((anchor + 0.5, j + 1, key))
    for _, _, key in sorted(order):
        span_a, span_b = in_a.get(key), in_b.get(key)
        rows.append(_row(tree_a, tree_b, key, span_a, span_b, depth))
        _align(tree_a, tree_b, tree_a.kids(span_a), tree_b.kids(span_b), depth + 1, rows)


def _row(tree_a: _Tree, tree_b: _Tree, key: tuple[str, str, int], span_a: dict[str, Any] | None,
         span_b: dict[str, Any] | None, depth: int) -> dict[str, Any]:
    side_a = _side(span_a, tree_a.start_ns) if span_a else None
    side_b = _side(span_b, tree_b.start_ns) if span_b else None
    name_a, name_b = span_a and span_a["name"], span_b and span_b["name"]
    row: dict[str, Any] = {
        "service": key[0], "name": name_a or name_b, "name_b": name_b if name_a and name_b != name_a else None,
        "occurrence": key[2], "depth": depth,
        "match": "both" if span_a and span_b else "only_a" if span_a else "only_b",
        "a": side_a, "b": side_b, "difference": None, "llm": None,
    }
    if side_a and side_b:
        row["difference"] = _differences(side_a, side_b, ("duration_ms", "input_tokens", "output_tokens", "cost_usd"))
        if "llm" in side_a or "llm" in side_b:
            row["llm"] = _llm_difference(side_a, side_b)
    return row


def _side(span: dict[str, Any], trace_start_ns: int) -> dict[str, Any]:
    """One span of a row; tokens, cost and the `llm` facts for model calls only (a chain or retrieval
    step carries LLM facts too, without a model call of its own)."""
    llm = span["llm"] if _is_model_call(span) else None
    side: dict[str, Any] = {
        "span_id": span["span_id"], "kind": span["kind"], "status": span["status"],
        "status_message": span["status_message"],
        "offset_ms": (span["start_unix_nano"] - trace_start_ns) / 1e6, "duration_ms": span["duration_ms"],
        "input_tokens": llm["input_tokens"] if llm else None,
        "output_tokens": llm["output_tokens"] if llm else None,
        "cost_usd": llm["cost_usd"] if llm else None,
    }
    if llm:
        side["llm"] = {
            "operation": llm["operation"], "provider": llm["provider"], "request_model": llm["request_model"],
            "response_model": llm["response_model"], "priced": llm["priced"], "ttft_ms": llm["ttft_ms"],
            "finish_reasons": llm["finish_reasons"], "error_type": llm["error_type"],
            "parameters": parameters(span["attributes"]), "input": llm.get("input"), "output": llm.get("output"),
        }
    return side


def parameters(attributes: dict[str, str]) -> dict[str, str]:
    """The request parameters of an LLM call (temperature, max_tokens, ...), by short name."""
    found: dict[str, str] = {}
    for key, value in attributes.items():
        prefix = next((p for p in _PARAMETER_PREFIXES if key.startswith(p)), None)
        if prefix and key not in _NOT_PARAMETERS:
            found[key.removeprefix(prefix)] = value
    for key in _PARAMETER_JSON:
        try:
            invocation = json.loads(attributes.get(key) or "{}")
        except ValueError:
            continue
        if isinstance(invocation, dict):
            for name, value in invocation.items():
                if name != "model":
                    found.setdefault(name, value if isinstance(value, str) else json.dumps(value))
    return dict(sorted(found.items()))


def _llm_difference(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    llm_a, llm_b = a.get("llm") or {}, b.get("llm") or {}
    params_a, params_b = llm_a.get("parameters", {}), llm_b.get("parameters", {})
    changed = [{"name": name, "a": params_a.get(name), "b": params_b.get(name)}
               for name in sorted(set(params_a) | set(params_b)) if params_a.get(name) != params_b.get(name)]
    return {
        "model_changed": (llm_a.get("request_model"), llm_a.get("response_model"))
        != (llm_b.get("request_model"), llm_b.get("response_model")),
        "parameters_changed": changed,
        "input_diff": text_diff(llm_a.get("input"), llm_b.get("input")),
        "output_diff": text_diff(llm_a.get("output"), llm_b.get("output")),
    }


def text_diff(a: str | None, b: str | None) -> dict[str, Any]:
    """A line diff of two texts (unified, as `diff -u` prints it), and whether they are the same."""
    text_a, text_b = a or "", b or ""
    if text_a == text_b:
        return {"same": True, "lines": []}
    lines = list(difflib.unified_diff(text_a.splitlines(), text_b.splitlines(), "a", "b",
                                      n=_DIFF_CONTEXT_LINES, lineterm=""))[2:]  # without the ---/+++ header
    truncated = len(lines) > _MAX_DIFF_LINES
    return {"same": False, "lines": lines[:_MAX_DIFF_LINES], "truncated": truncated,
            "ratio": round(difflib.SequenceMatcher(None, text_a, text_b).ratio(), 4)}


def _differences(a: dict[str, Any], b: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """b minus a for each key both sides have a number for; None where either lacks one."""
    return {key: (round(b[key] - a[key], 10) if a.get(key) is not None and b.get(key) is not None else None)
            for key in keys}


def _is_model_call(span: dict[str, Any]) -> bool:
    return bool(span["llm"]) and span["llm"]["operation"] in MODEL_OPERATIONS


def _summary(trace_id: str, tree: _Tree) -> dict[str, Any]:
    spans = tree.spans
    calls = [s["llm"] for s in spans if _is_model_call(s)]
    end_ns = max(s["start_unix_nano"] + int(s["duration_ms"] * 1e6) for s in spans)
    root = tree.roots[0]
    return {
        "trace_id": trace_id, "root_service": root["service"], "root_name": root["name"],
        "start_time": root["start_time"], "duration_ms": (end_ns - tree.start_ns) / 1e6,
        "span_count": len(spans), "error_count": sum(s["status"] == "error" for s in spans),
        "llm_calls": len(calls), "input_tokens": sum(c["input_tokens"] for c in calls),
        "output_tokens": sum(c["output_tokens"] for c in calls),
        "cost_usd": sum(c["cost_usd"] or 0.0 for c in calls),
        "unpriced_calls": sum(not c["priced"] for c in calls),
    }


_TYPICAL_SQL = """
    WITH per_trace AS (
        SELECT TraceId, dateDiff('nanosecond', min(Start), max(End)) / 1e6 AS duration_ms,
               max(RootService) AS root_service, max(RootName) AS root_name, min(Start) AS start_time
        FROM trace_index
        WHERE Day >= toDate({start:DateTime64(9)}) - 1 AND Day <= toDate({end:DateTime64(9)})
          AND Start BETWEEN {start:DateTime64(9)} - INTERVAL 1 HOUR AND {end:DateTime64(9)}
        GROUP BY TraceId
        HAVING root_service = {service:String} AND root_name = {name:String}
           AND start_time BETWEEN {start:DateTime64(9)} AND {end:DateTime64(9)}
    )
    SELECT TraceId AS trace_id, duration_ms,
           (SELECT quantileExactLow(0.5)(duration_ms) FROM per_trace) AS median_ms,
           (SELECT count() FROM per_trace) AS traces
    FROM per_trace
    WHERE TraceId != {exclude:String}
    ORDER BY abs(duration_ms - median_ms), TraceId
    LIMIT 1
"""


async def typical_trace(store: Store, window: Window, service: str, name: str,
                        exclude: str | None = None) -> dict[str, Any] | None:
    """The trace of this root service and span name with the median duration of the window's such
    traces (the lower middle one of an even count), or, when that is `exclude`, the one nearest it
    (ties by id, so the answer is stable); None if there is no other."""
    rows = await store.fetch(_TYPICAL_SQL, {**window.params(), "service": service, "name": name,
                                            "exclude": exclude or ""})
    if not rows:
        return None
    row = rows[0]
    return {"trace_id": row["trace_id"], "duration_ms": round(float(row["duration_ms"]), 3),
            "median_ms": round(float(row["median_ms"]), 3), "traces": int(row["traces"]),
            "root_service": service, "root_name": name}
