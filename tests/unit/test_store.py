"""The store on a real embedded chDB: migrations, group commit, day split, retries without
duplicates, overload. One chDB engine per process, so one store serves this whole module."""

from __future__ import annotations

import threading
import time
import uuid

import pyarrow as pa
import pytest

from llmlens.server.errors import Overloaded, StoreError
from llmlens.server.normalise import build_cost_model
from llmlens.server.receive.workers import build_batch
from llmlens.server.store import Store, open_backend
from llmlens.server.store.batch import Batch
from llmlens.server.store.schema import current_version, migrate, migrations
from llmlens.server.store.writer import BatchWriter
from tests.integration.otlp_requests import make_span, trace_request

DAY_NS = 86_400 * 10**9


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = Store(open_backend(data_dir=str(tmp_path_factory.mktemp("chdb") / "data")))
    yield s
    s.close()


def score_batch(tag: str, times: list[int]) -> Batch:
    """A batch of llm_scores rows (the simplest table), tagged so tests count only their own."""
    batch = Batch()
    cols = batch.columns("llm_scores")
    for i, t in enumerate(times):
        for name, value in (("Timestamp", t), ("TraceId", f"{i:032x}"), ("SpanId", f"{i:016x}"),
                            ("ServiceName", "svc"), ("App", "app"), ("Name", tag), ("Value", float(i)),
                            ("Label", ""), ("Comment", ""), ("Source", "test")):
            cols[name].append(value)
    batch.accepted = len(times)
    return batch


def span_batch(spans) -> Batch:
    """A batch normalised from an OTLP request of these spans, as the ingest workers build it."""
    # No time window: some tests place spans at fixed times (normalise's tests cover the window).
    return build_batch("traces", trace_request(spans).SerializeToString(), "protobuf", build_cost_model(window=None))


def count(store: Store, tag: str) -> int:
    return int(store.backend.fetch("SELECT count() AS c FROM llm_scores WHERE Name = {n:String}", {"n": tag})[0]["c"])


def test_migrations_are_idempotent(store):
    """Migrating an up-to-date store changes nothing and reports the newest version."""
    newest = migrations()[-1][0]
    assert store.schema_version == newest
    assert migrate(store.backend, 30) == newest
    assert current_version(store.backend) == newest


def test_concurrent_requests_are_group_committed(store):
    """Many concurrent submits all get committed, in fewer inserts than requests."""
    tag = uuid.uuid4().hex
    commits_before = store.writer_stats.commits
    now = time.time_ns()
    futures = []
    lock = threading.Lock()

    def submit():
        f = store.submit(score_batch(tag, [now] * 10))
        with lock:
            futures.append(f)

    threads = [threading.Thread(target=submit) for _ in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for f in futures:
        f.result(timeout=60)
    assert count(store, tag) == 600
    assert store.writer_stats.commits - commits_before < 60


def test_batch_across_midnight_is_stored_whole(store):
    """Rows of two days (two partitions) are all stored."""
    tag = uuid.uuid4().hex
    midnight = (time.time_ns() // DAY_NS) * DAY_NS
    store.write_sync(score_batch(tag, [midnight - 1000, midnight + 1000, midnight - 5, midnight + 5]), timeout=60)
    assert count(store, tag) == 4


class FlakyBackend:
    """The real chDB backend, except that one insert reports failure *after* committing:
    the case where a retry would store the block twice without deduplication tokens.
    (Injected failure: a real chDB cannot be made to fail on demand.)"""

    def __init__(self, real, fail_after_insert: int) -> None:
        self.real = real
        self.name = real.name
        self.inserts = 0
        self.fail_after_insert = fail_after_insert

    def insert(self, table, data, token):
        self.real.insert(table, data, token)
        self.inserts += 1
        if self.inserts == self.fail_after_insert:
            raise StoreError("connection lost after the insert was committed")


def test_retried_insert_is_not_duplicated(store):
    """A retried group re-sends blocks already committed; deduplication tokens drop them."""
    tag = uuid.uuid4().hex
    flaky = FlakyBackend(store.backend, fail_after_insert=1)
    writer = BatchWriter(flaky)  # type: ignore[arg-type]
    try:
        midnight = (time.time_ns() // DAY_NS) * DAY_NS
        writer.submit(score_batch(tag, [midnight - 10, midnight + 10, midnight + 20])).result(timeout=60)
    finally:
        writer.close()
    assert flaky.inserts >= 3  # two day blocks, one of them sent twice
    assert count(store, tag) == 3


class SpanInsertFailsOnce:
    """The real backend, except that the first otel_traces insert (which runs on the writer's
    second thread, beside llm_calls) reports failure after committing. (Injected failure.)"""

    def __init__(self, real) -> None:
        self.real = real
        self.name = real.name
        self.calls: list[str] = []
        self.failed = False

    def fetch(self, sql, params=None):
        return self.real.fetch(sql, params)

    def insert(self, table, data, token):
        self.real.insert(table, data, token)
        self.calls.append(table)
        if table == "otel_traces" and not self.failed:
            self.failed = True
            raise StoreError("connection lost after the spans were committed")


def test_failure_beside_a_parallel_insert_is_retried_without_duplicates(store):
    """Spans and LLM calls go in side by side; when the span insert fails, the whole group is
    retried once both settled, and every row is stored exactly once (trace_index included)."""
    trace_id = uuid.uuid4().bytes
    now = time.time_ns()
    batch = span_batch(make_span("chat", trace_id=trace_id, start_ns=now + i, attrs={"gen_ai.operation.name": "chat"})
                       for i in range(3))
    flaky = SpanInsertFailsOnce(store.backend)
    writer = BatchWriter(flaky)  # type: ignore[arg-type]
    try:
        writer.submit(batch).result(60)
    finally:
        writer.close()
    assert flaky.calls.count("otel_traces") == 2 and flaky.calls.count("llm_calls") == 2
    assert flaky.calls[-1] == "trace_index" and flaky.calls.count("trace_index") == 1  # only after success
    params = {"t": trace_id.hex()}
    fetch = store.backend.fetch
    assert fetch("SELECT count() AS c FROM otel_traces WHERE TraceId = {t:String}", params)[0]["c"] == 3
    assert fetch("SELECT count() AS c FROM llm_calls WHERE TraceId = {t:String}", params)[0]["c"] == 3
    assert fetch("SELECT sum(SpanCount) AS n FROM trace_index WHERE TraceId = {t:String}", params)[0]["n"] == 3


class BlockedBackend:
    """Holds every insert until released, so the queue fills (injected stall)."""

    name = "blocked"

    def __init__(self, real) -> None:
        self.real = real
        self.release = threading.Event()

    def insert(self, table, data, token):
        self.release.wait(30)
        self.real.insert(table, data, token)


def test_full_queue_answers_overloaded_and_loses_nothing_accepted(store):
    """Past max_pending_rows, submit raises Overloaded; everything accepted is still written."""
    tag = uuid.uuid4().hex
    blocked = BlockedBackend(store.backend)
    writer = BatchWriter(blocked, max_pending_rows=1000)  # type: ignore[arg-type]
    now = time.time_ns()
    accepted = []
    try:
        with pytest.raises(Overloaded) as info:
            for _ in range(50):
                accepted.append(writer.submit(score_batch(tag, [now] * 100)))
        assert info.value.retry_after > 0
        blocked.release.set()
        for f in accepted:
            f.result(timeout=60)
    finally:
        blocked.release.set()
        writer.close()
    assert count(store, tag) == 100 * len(accepted)


def test_close_commits_what_was_accepted(store):
    """close() drains the queue before stopping: accepted batches are not dropped."""
    tag = uuid.uuid4().hex
    writer = BatchWriter(store.backend)
    now = time.time_ns()
    futures = [writer.submit(score_batch(tag, [now] * 5)) for _ in range(20)]
    writer.close()
    assert all(f.done() and f.exception() is None for f in futures)
    assert count(store, tag) == 100
    with pytest.raises(Overloaded):
        writer.submit(score_batch(tag, [now]))


def test_parameters_with_special_characters_round_trip(store):
    """Tabs, newlines, backslashes and quotes in parameters reach ClickHouse intact (no injection)."""
    value = "a\tb\nc\\d'e\"f; DROP TABLE otel_traces --"
    rows = store.backend.fetch("SELECT {v:String} AS v", {"v": value})
    assert rows[0]["v"] == value
    assert store.backend.fetch("SELECT count() AS c FROM system.tables WHERE name = 'otel_traces'")[0]["c"] == 1


def test_embedded_store_merges_with_lower_write_amplification(store):
    """The merge settings land on every write-heavy table, and stay there when the store is opened again."""
    from llmlens.server.store.schema import WRITE_HEAVY_TABLES, tune_embedded_storage

    tune_embedded_storage(store.backend)  # a second time, as on every start: no error, no change
    ddl = _ddl(store)
    for table in WRITE_HEAVY_TABLES:
        assert "merge_selector_base = 8" in ddl[table], table
        assert "merge_selector_enable_heuristic_to_lower_max_parts_to_merge_at_once = 0" in ddl[table], table
    assert "merge_selector_base" not in ddl["llm_scores"]  # rarely written: ClickHouse's defaults


def test_embedded_store_writes_small_parts_as_one_packed_file(store):
    """Inserted parts are stored packed (one data.packed file), are read back whole, and the
    setting is on every table the writer inserts into."""
    from pathlib import Path

    from llmlens.server.store.schema import PACKED_PART_TABLES

    ddl = _ddl(store)
    for table in PACKED_PART_TABLES:
        assert "min_bytes_for_full_part_storage = 16777216" in ddl[table], table
    tag = uuid.uuid4().hex
    store.write_sync(score_batch(tag, [time.time_ns()] * 25), timeout=60)
    assert count(store, tag) == 25
    parts = store.backend.fetch("SELECT path FROM system.parts WHERE active AND table = 'llm_scores' "
                                "AND database = currentDatabase()")
    assert parts
    for part in parts:
        assert sorted(p.name for p in Path(part["path"]).iterdir()) == ["data.packed"], part


def _ddl(store) -> dict[str, str]:
    rows = store.backend.fetch("SELECT name, create_table_query AS ddl FROM system.tables "
                               "WHERE database = currentDatabase()")
    return {row["name"]: row["ddl"] for row in rows}


def test_trace_id_ts_answers_grafanas_trace_lookup(store):
    """otel_traces_trace_id_ts (a view over trace_index since schema 3) gives a stored trace's
    start and end in whole seconds, as the OTel exporter's table did, for the query Grafana's
    ClickHouse data source runs before it reads a trace's spans."""
    trace_id = uuid.uuid4().bytes
    start = (time.time_ns() // 10**9) * 10**9 - 3_600 * 10**9 + 250_000_000  # an hour ago, .25 s past a second
    # The last span ends the trace, at +9.25 s.
    store.write_sync(span_batch(make_span(f"step {i}", trace_id=trace_id, start_ns=start + offset_s * 10**9,
                                          duration_ms=length_s * 1000)
                                for i, (offset_s, length_s) in enumerate(((0, 5), (1, 2), (2, 7)))), timeout=60)
    # Two commits of the same trace: the view must still give one row with the whole span of time.
    store.write_sync(span_batch([make_span("late", trace_id=trace_id, start_ns=start + 20 * 10**9,
                                           duration_ms=1000)]), timeout=60)

    rows = store.backend.fetch(
        "WITH {id:String} AS trace_id, "
        "(SELECT min(Start) FROM otel_traces_trace_id_ts WHERE TraceId = trace_id) AS trace_start, "
        "(SELECT max(End) + 1 FROM otel_traces_trace_id_ts WHERE TraceId = trace_id) AS trace_end "
        "SELECT toUnixTimestamp(trace_start) AS s, toUnixTimestamp(trace_end) AS e, "
        "(SELECT count() FROM otel_traces WHERE TraceId = trace_id AND Timestamp >= trace_start "
        "AND Timestamp <= trace_end) AS spans", {"id": trace_id.hex()})
    assert rows == [{"s": start // 10**9, "e": start // 10**9 + 21 + 1, "spans": 4}]
    kinds = store.backend.fetch("SELECT name, type FROM system.columns WHERE table = 'otel_traces_trace_id_ts' "
                                "AND database = currentDatabase() ORDER BY position")
    assert kinds == [{"name": "TraceId", "type": "String"}, {"name": "Start", "type": "DateTime"},
                     {"name": "End", "type": "DateTime"}]


def test_a_batch_summarises_each_trace_in_one_trace_index_row():
    """Spans and LLM calls of a trace fold into one trace_index row per batch, with every fact."""
    from tests.integration.otlp_requests import llm_attrs, new_trace_id

    trace_a, trace_b = new_trace_id(), new_trace_id()
    root = make_span("POST /chat", trace_id=trace_a, start_ns=2_000_000_000_000, duration_ms=900)
    chat = make_span("chat", trace_id=trace_a, parent=root.span_id, start_ns=2_000_100_000_000, duration_ms=500,
                     attrs=llm_attrs("gpt-4o-mini", 100, 20), error=True)
    embed = make_span("embed", trace_id=trace_a, parent=root.span_id, start_ns=2_000_050_000_000,
                      attrs={**llm_attrs("text-embedding-3-small", 7, 0), "gen_ai.operation.name": "embeddings"})
    orphan = make_span("orphan chat", trace_id=trace_b, parent=b"\x01" * 8, start_ns=1_999_000_000_000,
                       attrs=llm_attrs("gpt-4o-mini", 5, 5))
    summary = span_batch([root, chat, embed, orphan]).arrow["trace_index"]
    summary = summary.cast(pa.schema([(f.name, pa.int64() if f.type == pa.timestamp("ns") else f.type)
                                      for f in summary.schema]))  # times as ns integers
    rows = {row["TraceId"]: row for row in summary.to_pylist()}
    assert summary.num_rows == 2
    a, b = rows[trace_a.hex()], rows[trace_b.hex()]
    assert (a["SpanCount"], a["ErrorCount"], a["LlmCalls"], a["InputTokens"], a["OutputTokens"]) == (3, 1, 2, 107, 20)
    assert (a["RootService"], a["RootName"]) == ("itest", "POST /chat")
    assert a["Start"] == 2_000_000_000_000 and a["End"] == 2_000_000_000_000 + 900_000_000
    assert a["CostUsd"] > 0
    assert (b["SpanCount"], b["LlmCalls"], b["RootName"]) == (1, 1, "")  # no root in this batch
