"""The trace list on a real chDB store, where a trace's spans come in batches: its root span (the
trace's start) exported after a child, so its trace_index rows are apart in time. The list groups
the rows from a time `lo` on; a trace with a row before `lo` started before it and must be listed
at its true start, on the page where that start falls, never twice and never with part of its rows."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from llmlens.server.query import traces
from llmlens.server.query.traces import TraceFilters, list_traces
from llmlens.server.query.window import Window
from llmlens.server.store import Store, open_backend
from tests.integration.otlp_requests import make_span, new_span_id, new_trace_id
from tests.unit.test_store import span_batch

S = 10**9


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = Store(open_backend(data_dir=str(tmp_path_factory.mktemp("chdb") / "data")))
    # A merge would fold a trace's rows into one: keep them apart, as they are until merges run.
    s.backend.execute("SYSTEM STOP MERGES trace_index")
    yield s
    s.close()


def _window(base: int, start_s: float, end_s: float) -> Window:
    at = datetime.fromtimestamp(base / S, UTC)
    return Window(at + timedelta(seconds=start_s), at + timedelta(seconds=end_s))


def _split_trace(store: Store, base: int, root_s: float, child_s: float) -> str:
    """A trace whose child span is exported first and its (earlier) root span in a later request."""
    trace_id, root = new_trace_id(), new_span_id()
    store.write_sync(span_batch([make_span("child", trace_id=trace_id, parent=root, start_ns=base + int(child_s * S))]))
    store.write_sync(span_batch([make_span("root", trace_id=trace_id, span_id=root, start_ns=base + int(root_s * S),
                                           duration_ms=(child_s - root_s + 2) * 1000)]))
    return trace_id.hex()


def _page(store: Store, window: Window, limit: int, cursor: str | None = None) -> dict:
    return asyncio.run(list_traces(store, window, TraceFilters(), limit, cursor))


def test_a_trace_whose_root_is_before_the_window_is_not_listed(store):
    base = (time.time_ns() // S - 50 * 3600) * S
    split = _split_trace(store, base, 0, 10)
    whole = make_span("whole", start_ns=base + 20 * S)
    store.write_sync(span_batch([whole]))
    listed = [item["trace_id"] for item in _page(store, _window(base, 5, 60), 50)["items"]]
    assert listed == [whole.trace_id.hex()]  # the split trace started at 0, before the window
    both = _page(store, _window(base, -5, 60), 50)["items"]
    assert [item["trace_id"] for item in both] == [whole.trace_id.hex(), split]
    assert both[1]["span_count"] == 2 and both[1]["root_name"] == "root"
    assert both[1]["start_time"] == datetime.fromtimestamp(base / S, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def test_a_split_trace_is_on_the_page_of_its_start_not_of_its_later_rows(store):
    base = (time.time_ns() // S - 40 * 3600) * S
    singles = []
    for i in range(60):
        span = make_span(f"single {i}", start_ns=base + (100 + i) * S)
        singles.append(span.trace_id.hex())
        store.write_sync(span_batch([span]))
    # Its child sits among the 50 newest rows, its root (the trace's start) after all of them.
    split = _split_trace(store, base, 95, 130.5)
    window = _window(base, 90, 200)
    first = _page(store, window, 50)
    assert [item["trace_id"] for item in first["items"]] == singles[::-1][:50]
    second = _page(store, window, 50, first["next_cursor"])
    assert [item["trace_id"] for item in second["items"]] == singles[::-1][50:] + [split]
    assert second["items"][-1]["span_count"] == 2 and second["next_cursor"] is None


def test_a_page_up_to_now_sums_later_rows_and_leaves_out_traces_that_start_after_it(store, monkeypatch):
    # A page whose window ends now groups the index's rows from lo on without first narrowing them
    # to the traces with a row in the window (traces._list_sql): it must list the same traces.
    base = (time.time_ns() // S - 300) * S
    split = _split_trace(store, base, 0, 10)
    ahead = 120 * S + time.time_ns()  # a span stamped two minutes ahead of the server's clock
    early = make_span("early", start_ns=base + 100 * S)
    store.write_sync(span_batch([early]))
    store.write_sync(span_batch([make_span("later", trace_id=early.trace_id, parent=early.span_id, start_ns=ahead)]))
    store.write_sync(span_batch([make_span("future", start_ns=ahead)]))  # starts after the window
    window = Window(datetime.fromtimestamp(base / S - 60, UTC), datetime.now(UTC))
    up_to_now = _page(store, window, 50)
    assert [item["trace_id"] for item in up_to_now["items"]] == [early.trace_id.hex(), split]
    assert [item["span_count"] for item in up_to_now["items"]] == [2, 2]
    assert up_to_now["items"][0]["duration_ms"] > 100_000  # its later row's end counts
    first = _page(store, window, 1)
    assert [item["trace_id"] for item in first["items"]] == [early.trace_id.hex()]
    assert [item["trace_id"] for item in _page(store, window, 1, first["next_cursor"])["items"]] == [split]
    monkeypatch.setattr(traces, "_RECENT", timedelta(0))  # the same window read as an older page
    assert _page(store, window, 50) == up_to_now
