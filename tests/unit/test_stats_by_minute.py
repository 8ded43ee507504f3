"""LLM stats bucketed by a whole number of minutes read their whole buckets from llm_calls'
stats_by_minute projection (schema 11) and the window's two end buckets from the calls: the answer
is the one the calls alone give, on a real chDB store, with parts that have the projection and
parts written before it (cleared here), windows cutting buckets at both ends, and filters."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime

import pytest

from llmlens.server.query import stats
from llmlens.server.query.window import Window
from llmlens.server.store import Store, open_backend
from tests.integration.otlp_requests import llm_attrs, make_span
from tests.unit.test_store import span_batch

S = 10**9
NOW = (time.time_ns() // (60 * S) - 1) * 60 * S  # a minute boundary just past


class Recording:
    """The store, recording the SQL it is asked."""

    def __init__(self, store: Store) -> None:
        self.store, self.sql, self.plan = store, [], ""

    async def fetch(self, sql, params=None):
        self.sql.append(sql)
        self.plan = "\n".join(row["explain"] for row in await self.store.fetch("EXPLAIN " + sql, params))
        return await self.store.fetch(sql, params)


def calls(count: int, seed: int):
    rng = random.Random(seed)
    spans = []
    for _ in range(count):
        model = rng.choice(["gpt-4o-mini", "gpt-4o", "claude-3-5-haiku"])
        attrs = {**llm_attrs(model, rng.randint(1, 900), rng.randint(1, 300),
                             provider="anthropic" if model.startswith("claude") else "openai")}
        start = NOW - rng.randint(0, 40 * 60 * S)  # the last 40 minutes, any nanosecond
        spans.append(make_span("chat " + model, start_ns=start, duration_ms=rng.uniform(50, 5000),
                               attrs=attrs, error=rng.random() < 0.1))
    return span_batch(spans)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = Store(open_backend(data_dir=str(tmp_path_factory.mktemp("chdb") / "data")))
    s.write_sync(calls(400, 1))
    # Parts from before schema 11 have no projection: clear it from these, then write more that have it.
    s.backend.execute("ALTER TABLE llm_calls CLEAR PROJECTION stats_by_minute SETTINGS mutations_sync = 1")
    s.write_sync(calls(400, 2))
    s.write_sync(calls(300, 3))
    yield s
    s.close()


def both(store: Store, window: Window, group_by: list[str], step: int, filters: dict[str, str], monkeypatch):
    fast = Recording(store)
    by_minute = asyncio.run(stats.llm_stats(fast, window, group_by, step, filters))
    with monkeypatch.context() as m:
        m.setattr(stats, "BY_MINUTE_KEYS", set())
        rows_only = asyncio.run(stats.llm_stats(store, window, group_by, step, filters))
    return by_minute, rows_only, fast


def ordered(answer):
    return sorted(answer["groups"], key=lambda g: (g["bucket"], *(str(g[k]) for k in answer["group_by"])))


@pytest.mark.parametrize(("start_s", "end_s", "step", "group_by", "filters"), [
    (37 * 60 + 23.5, 0.7, 60, ["model"], {}),
    (33 * 60 + 1, 2 * 60 + 59.999, 300, ["model"], {}),
    (40 * 60, 0, 300, ["provider", "service"], {}),
    (29 * 60 + 17, 61, 120, [], {"model": "gpt-4o"}),
    (38 * 60 + 5, 4, 600, ["operation"], {"provider": "openai"}),
])
def test_bucketed_stats_are_the_calls_own(store, monkeypatch, start_s, end_s, step, group_by, filters):
    window = Window(datetime.fromtimestamp((NOW - int(start_s * S)) / S, UTC),
                    datetime.fromtimestamp((NOW - int(end_s * S)) / S, UTC))
    by_minute, rows_only, fast = both(store, window, group_by, step, filters, monkeypatch)
    assert "toStartOfMinute(Timestamp) >=" in fast.sql[0] and "UNION ALL" in fast.sql[0]
    assert "(stats_by_minute)" in fast.plan  # ClickHouse reads the projection for the parts that have it
    assert ordered(by_minute) == ordered(rows_only)
    assert sum(g["requests"] for g in by_minute["groups"]) > 100


def test_the_projection_is_kept_by_new_parts_only(store):
    with_projection = store.backend.fetch(
        "SELECT DISTINCT parent_name FROM system.projection_parts WHERE table = 'llm_calls' "
        "AND name = 'stats_by_minute' AND active AND database = currentDatabase()")
    parts = store.backend.fetch("SELECT name FROM system.parts WHERE table = 'llm_calls' AND active "
                                "AND database = currentDatabase()")
    assert 0 < len(with_projection) < len(parts)


def test_steps_not_in_whole_minutes_and_user_groups_read_the_calls(store):
    window = Window(datetime.fromtimestamp((NOW - 30 * 60 * S) / S, UTC), datetime.fromtimestamp(NOW / S, UTC))
    for group_by, step in ((["model"], 90), (["user"], 60), (["model"], None)):
        recording = Recording(store)
        answer = asyncio.run(stats.llm_stats(recording, window, group_by, step, {}))
        assert "toStartOfMinute" not in recording.sql[0]
        assert sum(g["requests"] for g in answer["groups"]) > 100
