"""The store on a real embedded chDB: migrations, group commit, day split, retries without
duplicates, overload. One chDB engine per process, so one store serves this whole module."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from llmlens.server.normalise import Batch
from llmlens.server.store import Overloaded, Store, StoreError, open_backend
from llmlens.server.store.schema import current_version, migrate, migrations
from llmlens.server.store.writer import BatchWriter

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
    commits_before = store.writer.stats.commits
    now = time.time_ns()
    futures = []
    lock = threading.Lock()

    def submit():
        f = store.writer.submit(score_batch(tag, [now] * 10))
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
    assert store.writer.stats.commits - commits_before < 60


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
    from llmlens.server.store.schema import WRITE_HEAVY_TABLES, tune_embedded_merges

    tune_embedded_merges(store.backend)  # a second time, as on every start: no error, no change
    rows = store.backend.fetch("SELECT name, create_table_query AS ddl FROM system.tables "
                               "WHERE database = currentDatabase()")
    ddl = {row["name"]: row["ddl"] for row in rows}
    for table in WRITE_HEAVY_TABLES:
        assert "merge_selector_base = 8" in ddl[table], table
        assert "merge_selector_enable_heuristic_to_lower_max_parts_to_merge_at_once = 0" in ddl[table], table
    assert "merge_selector_base" not in ddl["llm_scores"]  # rarely written: ClickHouse's defaults
