"""One session's turns read the calls that set the session from llm_calls' by_session projection
(schema 13) and the sessionless calls of traces whose other exports set it from trace_index: the
turns are those the completed calls (query/call_context.CALLS) give, on a real chDB store with parts
written before the projection (cleared here) and after, calls that inherit the session and the user
from another export, and a trace whose exports name two sessions (the larger wins, as in CALLS)."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from llmlens.server.query import sessions
from llmlens.server.query.call_context import CALLS
from llmlens.server.query.llm_filter import MODEL_CALLS
from llmlens.server.query.window import Window
from llmlens.server.store import Store, open_backend
from tests.integration.otlp_requests import llm_attrs, make_span
from tests.unit.test_store import span_batch

S = 10**9
NOW = time.time_ns() // S * S
WINDOW = Window(datetime.fromtimestamp(NOW / S - 3600, UTC), datetime.fromtimestamp(NOW / S + 60, UTC))


def _ids() -> tuple[bytes, bytes]:
    return os.urandom(16), os.urandom(8)


def _turn(at: int, session: str, *, user: str = "", calls: int = 2) -> list:
    """A request span setting the session (and user) with its model calls, in one export."""
    trace, root = _ids()
    spans = [make_span("POST /chat", trace_id=trace, span_id=root, start_ns=at, duration_ms=900,
                       attrs={"session.id": session, **({"user.id": user} if user else {})})]
    spans += [make_span("chat gpt-4o-mini", trace_id=trace, span_id=os.urandom(8), parent=root,
                        start_ns=at + (i + 1) * 10**7, duration_ms=50, attrs=llm_attrs("gpt-4o-mini", 10 + i, 5))
              for i in range(calls)]
    return spans


def _split_turn(at: int, sessions_set: list[str], user: str = "") -> tuple[list, list]:
    """A trace whose model call is exported alone, its session set by spans of other exports (one
    export a span: a root speaks for its export's trace_index row)."""
    trace, root = _ids()
    call = [make_span("chat gpt-4o", trace_id=trace, span_id=os.urandom(8), parent=root, start_ns=at + 10**7,
                      duration_ms=40, attrs=llm_attrs("gpt-4o", 7, 3))]
    others = [make_span("POST /chat", trace_id=trace, span_id=root if i == 0 else os.urandom(8),
                        parent=b"" if i == 0 else root, start_ns=at + i, duration_ms=500,
                        attrs={"session.id": s, **({"user.id": user} if user and i == 0 else {})})
              for i, s in enumerate(sessions_set)]
    return call, others


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = Store(open_backend(data_dir=str(tmp_path_factory.mktemp("chdb") / "data")))
    at = NOW - 3000 * S
    old = [span for i in range(30) for span in _turn(at + i * 7 * S, "s-a" if i % 3 else "s-b", user=f"u{i % 4}")]
    s.write_sync(span_batch(old))
    # Parts from before schema 13 have no by_session projection: clear it from these.
    s.backend.execute("ALTER TABLE llm_calls CLEAR PROJECTION by_session SETTINGS mutations_sync = 1")
    new = [span for i in range(30) for span in _turn(at + (300 + i * 5) * S, "s-a" if i % 2 else "s-c")]
    # Another session's calls around them: parts of several granules, where the projection reads fewer.
    new += [span for i in range(1500) for span in _turn(at + 280 * S + i * S // 10, "s-filler", calls=12)]
    calls, others = [], []
    for i, names in enumerate([["s-a"], ["s-a"], ["s-a", "s-z"], ["s-c"]]):  # s-z > s-a: that trace is s-z's
        call, rest = _split_turn(at + (600 + i * 3) * S, names, user="inherited" if i == 1 else "")
        calls += call
        others += rest
    s.write_sync(span_batch(new))
    s.write_sync(span_batch(calls))
    for span in others:
        s.write_sync(span_batch([span]))
    yield s
    s.close()


def _expected(store: Store, session: str) -> list[tuple[str, int, int]]:
    rows = store.backend.fetch(
        f"SELECT TraceId AS t, count() AS n, sum(InputTokens) AS i FROM {CALLS} "
        f"WHERE Timestamp >= {{start:DateTime64(9)}} AND Timestamp < {{end:DateTime64(9)}} AND {MODEL_CALLS} "
        "AND SessionId = {s:String} GROUP BY TraceId ORDER BY min(Timestamp), TraceId",
        {**WINDOW.params(), "s": session})
    return [(r["t"], int(r["n"]), int(r["i"])) for r in rows]


@pytest.mark.parametrize("session", ["s-a", "s-b", "s-c", "s-z"])
def test_turns_are_the_completed_calls_own(store, session):
    got = asyncio.run(sessions.get_session(store, WINDOW, session))
    expected = _expected(store, session)
    assert [(t["trace_id"], t["llm_calls"], t["input_tokens"]) for t in got["traces"]] == expected
    assert len(expected) >= 1


def test_inherited_session_and_user_reach_the_turn(store):
    got = asyncio.run(sessions.get_session(store, WINDOW, "s-a"))
    assert len(got["traces"]) == 20 + 15 + 2  # old parts, new parts, two split traces (not the s-z one)
    assert "inherited" in got["users"] and "u1" in got["users"]


def test_unknown_session_is_none(store):
    assert asyncio.run(sessions.get_session(store, WINDOW, "nope")) is None
    assert asyncio.run(sessions.get_session(store, Window(WINDOW.start - timedelta(days=3),
                                                          WINDOW.start - timedelta(days=2)), "s-a")) is None


def test_the_session_reads_the_projection_for_the_parts_that_have_it(store):
    own = sessions.TURNS_SQL.split("UNION ALL")[0].removeprefix("\nWITH calls AS (")
    sql = own.replace("{where}", sessions.LlmFilter.of(WINDOW).where())
    params = {**WINDOW.params(), "f_session": "s-a"}
    plan = "\n".join(r["explain"] for r in store.backend.fetch("EXPLAIN " + sql, params))
    assert "(by_session)" in plan
    with_projection = store.backend.fetch(
        "SELECT DISTINCT parent_name FROM system.projection_parts WHERE table = 'llm_calls' "
        "AND name = 'by_session' AND active AND database = currentDatabase()")
    parts = store.backend.fetch("SELECT name FROM system.parts WHERE table = 'llm_calls' AND active "
                                "AND database = currentDatabase()")
    assert 0 < len(with_projection) < len(parts)
