"""One trace read by id on a real chDB store: its spans are looked for within the times trace_index
holds for it, so none may be missed — spans sent in batches hours and a day apart, LLM calls, and
a trace whose trace_index rows are not stored (read over the whole store instead)."""

from __future__ import annotations

import asyncio
import time

import pytest

from llmlens.server.query.traces import get_trace
from llmlens.server.store import Store, open_backend
from tests.integration.otlp_requests import llm_attrs, make_span, new_span_id, new_trace_id
from tests.unit.test_store import span_batch

HOUR_NS = 3600 * 10**9


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = Store(open_backend(data_dir=str(tmp_path_factory.mktemp("chdb") / "data")))
    yield s
    s.close()


def test_a_trace_sent_in_batches_a_day_apart_is_read_whole(store):
    trace_id, root = new_trace_id(), new_span_id()
    start = time.time_ns() - 30 * HOUR_NS
    store.write_sync(span_batch([make_span("root", trace_id=trace_id, span_id=root, start_ns=start,
                                           duration_ms=26 * 3600 * 1000)]))
    store.write_sync(span_batch([make_span("chat", trace_id=trace_id, parent=root, start_ns=start + 3 * HOUR_NS,
                                           attrs=llm_attrs("gpt-4o-mini", 10, 5))]))
    store.write_sync(span_batch([make_span("late", trace_id=trace_id, parent=root, start_ns=start + 25 * HOUR_NS,
                                           duration_ms=HOUR_NS / 1e6)]))
    trace = asyncio.run(get_trace(store, trace_id.hex()))
    assert [span["name"] for span in trace["spans"]] == ["root", "chat", "late"]
    chat = trace["spans"][1]
    assert chat["llm"]["request_model"] == "gpt-4o-mini" and chat["llm"]["input_tokens"] == 10


def test_a_trace_missing_from_trace_index_is_still_read(store):
    trace_id = new_trace_id()
    store.write_sync(span_batch([make_span("orphan", trace_id=trace_id, attrs=llm_attrs("gpt-4o", 3, 4))]))
    store.backend.execute(f"ALTER TABLE trace_index DELETE WHERE TraceId = '{trace_id.hex()}' "
                          "SETTINGS mutations_sync = 1")
    assert not store.backend.fetch(f"SELECT 1 FROM trace_index WHERE TraceId = '{trace_id.hex()}'")
    trace = asyncio.run(get_trace(store, trace_id.hex()))
    assert [span["name"] for span in trace["spans"]] == ["orphan"]
    assert trace["spans"][0]["llm"]["request_model"] == "gpt-4o"


def test_an_unknown_trace_is_none(store):
    assert asyncio.run(get_trace(store, new_trace_id().hex())) is None
