"""trace_index carries a trace's session, user, app and department as its spans set them: the root's
where the batch holds it, else any span's, so a call exported in another request can read them."""

from __future__ import annotations

import pyarrow as pa

from llmlens.server.normalise import normalise_spans
from llmlens.server.normalise.cost import build_cost_model
from llmlens.server.store import trace_index

A, B = "ab" * 16, "cd" * 16


def _span(trace_id, span_id, parent, attributes):
    return (trace_id, span_id, parent, "", "s", 1, 1_000, 2_000, 0, "", attributes, None, None)


def _index(spans):
    batch = normalise_spans([({"service.name": "svc"}, [("scope", "", spans)])], build_cost_model(window=None))
    rows = batch.freeze().arrow[trace_index.TABLE].to_pylist()
    return {r["TraceId"]: {c: r[c] for c in trace_index.CONTEXT_COLUMNS} for r in rows}


def test_root_speaks_for_its_trace_else_any_span():
    got = _index([
        _span(A, "1" * 16, "2" * 16, {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}),
        _span(A, "2" * 16, "3" * 16, {"session.id": "zz-child", "llmlens.app": "child-app"}),
        _span(A, "3" * 16, "", {"session.id": "aa-root", "user.id": "u1"}),
        # B's root is in another request: the child speaks for it here.
        _span(B, "4" * 16, "5" * 16, {"enduser.id": "u2", "department": "cx", "http.route": "/x"}),
        _span(B, "6" * 16, "4" * 16, {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}),
    ])
    assert got[A] == {"SessionId": "aa-root", "UserId": "u1", "App": "child-app", "Department": ""}
    assert got[B] == {"SessionId": "", "UserId": "u2", "App": "", "Department": "cx"}


def test_no_context_facts_gives_empty_columns():
    got = _index([_span(A, "1" * 16, "", {"http.route": "/"})])
    assert got[A] == {"SessionId": "", "UserId": "", "App": "", "Department": ""}


def test_sliced_and_chunked_spans_read_the_right_rows():
    """The writer re-derives a trimmed batch: its span table may be a slice or several chunks."""
    batch = normalise_spans([({"service.name": "svc"}, [("scope", "", [
        _span(A, "1" * 16, "", {"session.id": "first"}),
        _span(B, "2" * 16, "", {"http.route": "/"}),
        _span(B, "3" * 16, "2" * 16, {"user.id": "second"}),
    ])])], build_cost_model(window=None)).freeze()
    spans = batch.arrow["otel_traces"]
    chunked = pa.concat_tables([spans.slice(1, 1), spans.slice(2, 1)])
    rows = trace_index.of_batch({"otel_traces": chunked}).to_pylist()
    assert [(r["TraceId"], r["SessionId"], r["UserId"]) for r in rows] == [(B, "", "second")]
