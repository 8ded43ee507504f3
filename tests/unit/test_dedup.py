"""Counted once, on a real embedded chDB: resent spans, LLM calls and scores are stored once; a
commit that fails part-way is finished before anything else, so its resends are repeats; commit
listeners see exactly the committed rows; a commit touches a bounded number of partitions."""

from __future__ import annotations

import time
import uuid

import pytest

from llmlens import semconv
from llmlens.server.errors import StoreError
from llmlens.server.normalise import build_cost_model
from llmlens.server.receive.workers import build_batch
from llmlens.server.store import Store, open_backend
from llmlens.server.store.batch import Batch
from llmlens.server.store.writer import BatchWriter
from tests.integration.otlp_requests import key_values, log_request, make_log, make_span, metrics_request
from tests.unit.test_store import span_batch

DAY_NS = 86_400 * 10**9


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = Store(open_backend(data_dir=str(tmp_path_factory.mktemp("chdb") / "data")))
    yield s
    s.close()


def llm_spans(trace_id: bytes, n: int, start_ns: int, *, tokens: int = 10) -> list:
    """n chat spans of one trace, each an LLM call with tokens (and so a cost)."""
    return [make_span("chat gpt-4o-mini", trace_id=trace_id, span_id=uuid.uuid4().bytes[:8], start_ns=start_ns + i,
                      attrs={"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
                             "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": tokens,
                             "gen_ai.usage.output_tokens": tokens})
            for i in range(n)]


def facts(store: Store, trace_id: bytes) -> dict[str, float]:
    """What every count and sum in the API is built from, for one trace."""
    tid = trace_id.hex()
    one = lambda sql: store.backend.fetch(sql, {"t": tid})[0]  # noqa: E731
    spans = one("SELECT count() AS n FROM otel_traces WHERE TraceId = {t:String}")["n"]
    calls = one("SELECT count() AS n, sum(InputTokens) AS tokens, sum(CostUsd) AS cost FROM llm_calls "
                "WHERE TraceId = {t:String}")
    index = one("SELECT sum(SpanCount) AS spans, sum(LlmCalls) AS calls, sum(InputTokens) AS tokens "
                "FROM trace_index WHERE TraceId = {t:String}")
    return {"spans": int(spans), "calls": int(calls["n"]), "tokens": int(calls["tokens"] or 0),
            "cost": round(float(calls["cost"] or 0), 9), "index_spans": int(index["spans"] or 0),
            "index_calls": int(index["calls"] or 0), "index_tokens": int(index["tokens"] or 0)}


def test_a_resent_export_is_stored_once(store):
    trace_id = uuid.uuid4().bytes
    spans = llm_spans(trace_id, 4, time.time_ns())
    store.write_sync(span_batch(spans), timeout=60)
    first = facts(store, trace_id)
    store.write_sync(span_batch(spans), timeout=60)  # the exporter timed out and sent it again
    assert facts(store, trace_id) == first
    assert first["spans"] == first["calls"] == first["index_spans"] == first["index_calls"] == 4
    assert first["tokens"] == first["index_tokens"] == 40 and first["cost"] > 0


def test_repeats_within_one_commit_group_are_stored_once(store):
    trace_id = uuid.uuid4().bytes
    spans = llm_spans(trace_id, 3, time.time_ns())
    futures = [store.submit(span_batch(spans)) for _ in range(3)]  # queued together: one group
    for future in futures:
        future.result(60)
    assert facts(store, trace_id)["spans"] == facts(store, trace_id)["index_spans"] == 3


def test_a_partly_resent_export_stores_only_its_new_spans(store):
    """A trace exported in parts, one part sent twice: the new spans go in, the repeats do not, and
    trace_index counts each span once."""
    trace_id = uuid.uuid4().bytes
    now = time.time_ns()
    first, second = llm_spans(trace_id, 2, now), llm_spans(trace_id, 2, now + 100)
    store.write_sync(span_batch(first), timeout=60)
    store.write_sync(span_batch(first + second), timeout=60)
    got = facts(store, trace_id)
    assert (got["spans"], got["calls"], got["index_spans"], got["index_calls"], got["tokens"]) == (4, 4, 4, 4, 40)


def test_the_same_span_id_in_another_trace_is_not_a_repeat(store):
    span_id = uuid.uuid4().bytes[:8]
    now = time.time_ns()
    traces = [uuid.uuid4().bytes for _ in range(2)]
    for trace_id in traces:
        store.write_sync(span_batch([make_span("step", trace_id=trace_id, span_id=span_id, start_ns=now)]), timeout=60)
    assert [facts(store, t)["spans"] for t in traces] == [1, 1]


def test_resent_scores_are_stored_once(store):
    trace_id = uuid.uuid4().bytes
    span = make_span("chat", trace_id=trace_id, start_ns=time.time_ns())
    event = span.events.add(name=semconv.EVALUATION_EVENT, time_unix_nano=span.start_time_unix_nano + 1)
    event.attributes.extend(key_values({semconv.EVALUATION_NAME: "relevance", semconv.EVALUATION_SCORE: 0.8}))
    batch = span_batch([span])
    assert "llm_scores" in batch.arrow, "the span should carry a score"
    for _ in range(2):
        store.write_sync(span_batch([span]), timeout=60)
    rows = store.backend.fetch("SELECT count() AS n FROM llm_scores WHERE TraceId = {t:String}", {"t": trace_id.hex()})
    assert int(rows[0]["n"]) == 1


class TraceIndexFails:
    """The real backend, except that trace_index inserts fail while `failing` is set, after the
    spans and calls of the same commit have landed (a disk that filled up mid-commit). Injected."""

    def __init__(self, real) -> None:
        self.real = real
        self.name = real.name
        self.failing = True

    def fetch(self, sql, params=None):
        return self.real.fetch(sql, params)

    def insert(self, table, data, token):
        if table == "trace_index" and self.failing:
            raise StoreError("not enough space on the disk")
        self.real.insert(table, data, token)


def test_a_commit_that_failed_part_way_is_finished_before_anything_else(store):
    """The client got 503 while spans and calls were already in; once the store works again the
    writer finishes that commit first, so the client's resend finds every row stored."""
    flaky = TraceIndexFails(store.backend)
    writer = BatchWriter(flaky, retries=1)
    seen: list[int] = []
    writer.listeners.append(lambda batches: seen.extend(b.row_count for b in batches))
    try:
        trace_id = uuid.uuid4().bytes
        spans = llm_spans(trace_id, 3, time.time_ns())
        with pytest.raises(StoreError):
            writer.submit(span_batch(spans)).result(60)
        assert facts(store, trace_id)["index_spans"] == 0  # half stored: the trace is not listed yet
        assert seen == []  # nothing counted for a failed commit
        with pytest.raises(StoreError):  # still failing: the resend fails too, and stores nothing more
            writer.submit(span_batch(spans)).result(60)
        flaky.failing = False
        writer.submit(span_batch(spans)).result(60)  # the client's next resend
        got = facts(store, trace_id)
        assert (got["spans"], got["calls"], got["index_spans"], got["index_calls"]) == (3, 3, 3, 3)
        assert sum(seen) == 6  # the finished commit's 3 spans + 3 calls, once; the resend added nothing
    finally:
        writer.close()


def test_listeners_see_only_rows_not_stored_before(store):
    trace_id = uuid.uuid4().bytes
    spans = llm_spans(trace_id, 2, time.time_ns())
    committed: list[Batch] = []
    store.on_commit(committed.extend)
    try:
        store.write_sync(span_batch(spans), timeout=60)
        store.write_sync(span_batch(spans), timeout=60)
    finally:
        store.writer.listeners.remove(committed.extend)
    spans_seen = sum(b.arrow["otel_traces"].num_rows for b in committed if "otel_traces" in b.arrow)
    assert spans_seen == 2
    # the trimmed batch was derived again: its trace_index rows describe what it holds (nothing)
    assert all("trace_index" not in b.arrow for b in committed if "otel_traces" not in b.arrow)


def test_a_commit_touches_a_bounded_number_of_partitions(store):
    """A request spread over many days is committed on its own, not with everybody else's."""
    writer = BatchWriter(store.backend, max_partitions_per_commit=8, linger_seconds=0.5)
    groups: list[int] = []
    writer.listeners.append(lambda batches: groups.append(len(batches)))
    try:
        now = time.time_ns()
        spread = span_batch([make_span("old", trace_id=uuid.uuid4().bytes, start_ns=now - d * DAY_NS)
                             for d in range(6)])
        small = [span_batch([make_span("new", trace_id=uuid.uuid4().bytes, start_ns=now)]) for _ in range(3)]
        with writer.incoming():  # hold the writer's linger open while all four are queued
            futures = [writer.submit(b) for b in (small[0], spread, small[1], small[2])]
        for future in futures:
            future.result(60)
        assert len(groups) >= 2 and max(groups) < 4
    finally:
        writer.close()


def test_a_resent_log_or_metric_request_is_stored_once(store):
    """Log records and metric points have no ids: the same request bytes sent again (a timeout, a
    503) are recognised by their digest, which is stored with the rows (so it holds across restarts)."""
    tag = uuid.uuid4().hex
    logs = log_request([make_log(f"{tag} line {i}") for i in range(3)]).SerializeToString()
    metrics = metrics_request()
    gauge = metrics.resource_metrics[0].scope_metrics[0].metrics.add(name=f"m_{tag}")
    gauge.gauge.data_points.add(time_unix_nano=time.time_ns(), as_double=1.5)
    points = metrics.SerializeToString()
    cost = build_cost_model()
    futures = [store.submit(build_batch(signal, body, "protobuf", cost))
               for signal, body in (("logs", logs), ("logs", logs), ("metrics", points))]
    for future in futures:
        future.result(60)
    store.write_sync(build_batch("metrics", points, "protobuf", cost), timeout=60)
    store.write_sync(build_batch("logs", logs, "protobuf", cost), timeout=60)
    count = lambda sql: int(store.backend.fetch(sql, {"t": tag})[0]["n"])  # noqa: E731
    assert count("SELECT count() AS n FROM otel_logs WHERE startsWith(Body, {t:String})") == 3
    assert count("SELECT count() AS n FROM otel_metrics_gauge WHERE MetricName = concat('m_', {t:String})") == 1
    # a new request with the same records in it is a different request: it is stored
    store.write_sync(build_batch("logs", log_request([make_log(f"{tag} line 9")]).SerializeToString(),
                                 "protobuf", cost), timeout=60)
    assert count("SELECT count() AS n FROM otel_logs WHERE startsWith(Body, {t:String})") == 4


class OneBlockNeverLands(TraceIndexFails):
    """trace_index inserts of the first commit's token always fail (a deterministic error); others work."""

    def __init__(self, real) -> None:
        super().__init__(real)
        self.bad_token: str | None = None

    def insert(self, table, data, token):
        if table == "trace_index" and (self.bad_token is None or token.startswith(self.bad_token)):
            self.bad_token = token.split("-")[0]
            raise StoreError("an error that repeats")
        self.real.insert(table, data, token)


def test_a_commit_that_cannot_be_finished_is_given_up_and_ingest_goes_on(store, monkeypatch):
    import llmlens.server.store.writer as writer_module

    monkeypatch.setattr(writer_module, "_MAX_FINISH_TRIES", 2)
    writer = BatchWriter(OneBlockNeverLands(store.backend), retries=0)
    try:
        now = time.time_ns()
        with pytest.raises(StoreError):
            writer.submit(span_batch(llm_spans(uuid.uuid4().bytes, 1, now))).result(60)
        for _ in range(2):  # each new commit first tries to finish the stuck one, and fails with it
            with pytest.raises(StoreError):
                writer.submit(span_batch(llm_spans(uuid.uuid4().bytes, 1, now))).result(60)
        trace_id = uuid.uuid4().bytes
        writer.submit(span_batch(llm_spans(trace_id, 2, now))).result(60)  # given up: ingest goes on
        assert facts(store, trace_id)["index_spans"] == 2
    finally:
        writer.close()
