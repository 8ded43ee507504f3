"""The API behind the UI's first view and its lists, on a real server with spans this module sends:
the default range picked from the data (GET /api/v1/activity), the overview's request rate over the
time with calls, and paging (search, logs, sessions)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from llmlens.server.query.activity import active_since, default_range
from tests.integration.otlp_requests import (
    MS,
    llm_attrs,
    log_request,
    make_log,
    make_span,
    new_trace_id,
    post,
    trace_request,
)
from tests.server_process import ServerProcess

SECOND = 1_000_000_000


def get(server: ServerProcess, path: str, **params: Any) -> Any:
    answer = httpx.get(server.url + path, params=params, timeout=30)
    assert answer.status_code == 200, f"{path} {params}: {answer.status_code} {answer.text[:300]}"
    return answer.json()


def send_calls(server: ServerProcess, starts: list[datetime], *, service: str = "itest",
               session: str | None = None, model: str = "gpt-4o-mini") -> list[str]:
    """One trace per start: a root span and an LLM call under it; returns the trace ids."""
    spans, ids = [], []
    for at in starts:
        trace_id = new_trace_id()
        start_ns = int(at.timestamp() * SECOND)
        root = make_span("handle", trace_id=trace_id, start_ns=start_ns, duration_ms=50)
        attrs = llm_attrs(model, 10, 5)
        if session:
            attrs["session.id"] = session
        spans += [root, make_span(f"chat {model}", trace_id=trace_id, parent=root.span_id,
                                  start_ns=start_ns + 5 * MS, duration_ms=40, attrs=attrs)]
        ids.append(trace_id.hex())
    assert post(server.url, "traces", trace_request(spans, service=service)).status_code == 200
    return ids


def eventually(check, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


# --- the default range ----------------------------------------------------------------------

def test_active_period_and_range_rules() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    minute = lambda m: int((now - timedelta(minutes=m)).timestamp())  # noqa: E731
    assert active_since([]) is None
    # A gap longer than 30 minutes ends the newest active period.
    assert active_since([minute(1), minute(5), minute(30), minute(95)]) == minute(30)
    assert active_since([minute(1), minute(31), minute(61)]) == minute(61)
    at = lambda m: now - timedelta(minutes=m)  # noqa: E731
    assert default_range(now, at(14), at(1)) == "15m"
    assert default_range(now, at(15), at(1)) == "15m"
    assert default_range(now, at(16), at(1)) == "1h"
    assert default_range(now, at(5 * 60), at(1)) == "6h"
    assert default_range(now, at(23 * 60), at(1)) == "24h"
    assert default_range(now, None, at(3 * 24 * 60)) == "7d"
    assert default_range(now, None, at(20 * 24 * 60)) == "30d"
    assert default_range(now, None, at(90 * 24 * 60)) == "30d"
    assert default_range(now, None, None) == "1h"


def test_activity_picks_the_range_from_the_data(tmp_path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        empty = get(server, "/api/v1/activity")
        assert empty["default_range"] == "1h" and empty["newest_minute"] is None and empty["active_since"] is None
        now = datetime.now(UTC)
        send_calls(server, [now - timedelta(days=3)])
        server.wait_for_spans(2)
        assert get(server, "/api/v1/activity")["default_range"] == "7d"
        send_calls(server, [now - timedelta(minutes=4), now - timedelta(minutes=2)])
        server.wait_for_spans(6)
        recent = get(server, "/api/v1/activity")
        assert recent["default_range"] == "15m"
        assert recent["active_since"] <= (now - timedelta(minutes=4)).strftime("%Y-%m-%dT%H:%M:%S")
        # Traffic 20 minutes ago joins the active period (no gap over 30 minutes): one hour holds it.
        send_calls(server, [now - timedelta(minutes=20)])
        server.wait_for_spans(8)
        assert get(server, "/api/v1/activity")["default_range"] == "1h"
        # Logs count as activity too: a log line 50 minutes ago bridges to a call 75 minutes ago (six
        # hours now); a call seven hours ago, after a gap of hours, does not widen it to a day.
        records = [make_log("still here", time_ns=int((now - timedelta(minutes=50)).timestamp() * SECOND))]
        assert post(server.url, "logs", log_request(records, service="itest")).status_code == 200
        send_calls(server, [now - timedelta(minutes=75), now - timedelta(hours=7)])
        server.wait_for_spans(12)
        assert eventually(lambda: get(server, "/api/v1/activity")["default_range"] == "6h")
    finally:
        server.terminate()


# --- the overview's request rate --------------------------------------------------------------

@pytest.fixture(scope="module")
def rated(llmlens_server: ServerProcess) -> tuple[ServerProcess, datetime, int]:
    """40 calls two seconds apart (39 intervals over 78 s), ending ten minutes ago."""
    first = datetime.now(UTC) - timedelta(minutes=10, seconds=78)
    send_calls(llmlens_server, [first + timedelta(seconds=2 * i) for i in range(40)], service="rated")
    llmlens_server.wait_for_spans(80)
    return llmlens_server, first, 40


def test_overview_request_rate_is_over_the_time_with_calls(rated) -> None:
    server, first, n = rated
    for window in ("-24h", "-6h", "-1h"):
        totals = get(server, "/api/v1/overview", start=window, service="rated")["totals"]
        assert totals["requests"] == n
        # Over the 78 s from the first call to the last, not over the whole window.
        assert totals["active_seconds"] == pytest.approx(78, abs=0.5), window
        assert totals["request_rate_per_s"] == pytest.approx((n - 1) / 78, rel=0.01), window
    # Two calls two seconds apart: one every two seconds, whatever the window.
    two = first + timedelta(seconds=19)
    totals = get(server, "/api/v1/overview", start=two.isoformat(), end=(two + timedelta(seconds=4)).isoformat(),
                 service="rated")["totals"]
    assert totals["requests"] == 2 and totals["request_rate_per_s"] == pytest.approx(0.5, rel=0.01)
    # One call has no rate; no calls neither.
    one = get(server, "/api/v1/overview", start=two.isoformat(), end=(two + timedelta(seconds=1.5)).isoformat(),
              service="rated")["totals"]
    assert one["requests"] == 1 and one["request_rate_per_s"] is None
    nothing = get(server, "/api/v1/overview", start="-1h", service="nobody")["totals"]
    assert nothing["requests"] == 0 and nothing["request_rate_per_s"] is None


# --- paging -----------------------------------------------------------------------------------

def pages(server: ServerProcess, path: str, size: int, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page of a list, following next_cursor until it is null."""
    out, cursor = [], None
    while True:
        body = get(server, path, limit=size, **params, **({"cursor": cursor} if cursor else {}))
        out.append(body["items"])
        cursor = body["next_cursor"]
        if not cursor:
            return out
        assert len(out) < 100, "paging does not end"


@pytest.mark.parametrize("size", [1, 7, 39, 40, 41])
def test_search_pages_are_the_whole_result_once(rated, size: int) -> None:
    server, first, n = rated
    window = {"start": (first - timedelta(minutes=1)).isoformat(), "end": (first + timedelta(minutes=3)).isoformat()}
    q = '{ resource.service.name = "rated" && span.gen_ai.request.model = "gpt-4o-mini" }'
    whole = get(server, "/api/v1/search", q=q, limit=1000, **window)
    assert len(whole["items"]) == n and whole["next_cursor"] is None
    got = pages(server, "/api/v1/search", size, q=q, **window)
    assert [len(p) for p in got[:-1]] == [size] * (len(got) - 1) and 0 < len(got[-1]) <= size
    ids = [item["trace_id"] for page in got for item in page]
    assert ids == [item["trace_id"] for item in whole["items"]]  # same order, no duplicates, no gaps
    assert len(set(ids)) == n
    # Newest matching span first.
    starts = [item["start_time"] for page in got for item in page]
    assert starts == sorted(starts, reverse=True)


def test_search_cursor_after_spanset_conditions_and_errors(rated) -> None:
    server, first, n = rated
    window = {"start": (first - timedelta(minutes=1)).isoformat(), "end": (first + timedelta(minutes=3)).isoformat()}
    q = '{ resource.service.name = "rated" } && { span.gen_ai.request.model = "gpt-4o-mini" }'
    got = pages(server, "/api/v1/search", 9, q=q, **window)
    assert sum(len(p) for p in got) == n and len(got) == 5
    for bad in ["", "not-base64!", "WyJ4Il0", "eyJhIjoxfQ"]:
        answer = httpx.get(server.url + "/api/v1/search", params={"q": q, "cursor": bad, **window}, timeout=30)
        assert answer.status_code == 400 and answer.json()["error"]["parameter"] == "cursor", (bad, answer.text)


def test_logs_pages_keep_lines_of_one_instant(llmlens_server: ServerProcess) -> None:
    at = int((datetime.now(UTC) - timedelta(minutes=30)).timestamp()) * SECOND
    # 30 lines: three at each of ten instants (a line has no id; the paging key must still tell them apart).
    records = [make_log(f"paged line {i}-{j}", time_ns=at + i * SECOND) for i in range(10) for j in range(3)]
    assert post(llmlens_server.url, "logs", log_request(records, service="paged")).status_code == 200
    assert eventually(lambda: len(get(llmlens_server, "/api/v1/logs", service="paged", limit=1000,
                                      start="-1h")["items"]) == 30)
    for size in (1, 4, 30):
        got = pages(llmlens_server, "/api/v1/logs", size, service="paged", start="-1h")
        bodies = [line["body"] for page in got for line in page]
        assert sorted(bodies) == sorted(r.body.string_value for r in records), size
        times = [line["time"] for page in got for line in page]
        assert times == sorted(times, reverse=True)
    answer = httpx.get(llmlens_server.url + "/api/v1/logs", params={"cursor": "WyJ4IiwiMSJd"}, timeout=30)
    assert answer.status_code == 400 and answer.json()["error"]["parameter"] == "cursor"


def test_sessions_pages(llmlens_server: ServerProcess) -> None:
    at = datetime.now(UTC) - timedelta(minutes=40)
    names = [f"paged-session-{i:02d}" for i in range(11)]
    for i, name in enumerate(names):
        # Sessions 0-3 end at the same instant: the session id orders them.
        last = at + timedelta(seconds=0 if i < 4 else i)
        send_calls(llmlens_server, [last - timedelta(seconds=30), last], service="sessions", session=name)
    assert eventually(lambda: len(get(llmlens_server, "/api/v1/sessions", service="sessions", start="-1h",
                                      limit=1000)["items"]) == len(names))
    whole = [s["session_id"] for s in get(llmlens_server, "/api/v1/sessions", service="sessions", start="-1h",
                                          limit=1000)["items"]]
    assert whole == names[:3:-1] + names[:4]  # most recent first, ties by id
    for size in (1, 3, 11):
        got = pages(llmlens_server, "/api/v1/sessions", size, service="sessions", start="-1h")
        assert [s["session_id"] for page in got for s in page] == whole, size
        assert all(page[0]["turns"] == 2 for page in got)
    answer = httpx.get(llmlens_server.url + "/api/v1/sessions", params={"cursor": "WyJ4Il0"}, timeout=30)
    assert answer.status_code == 400 and answer.json()["error"]["parameter"] == "cursor"


# --- group_by, repeated or comma-separated ------------------------------------------------------

def test_group_by_takes_both_forms(rated) -> None:
    server, _, n = rated
    repeated = httpx.get(server.url + "/api/v1/llm/stats", params=[("group_by", "service"), ("group_by", "model"),
                                                                   ("start", "-1h")], timeout=30)
    assert repeated.status_code == 200, repeated.text
    for form in ["service,model", " service , model ", "service,,model"]:
        comma = get(server, "/api/v1/llm/stats", group_by=form, start="-1h")
        assert comma["groups"] == repeated.json()["groups"], form
        assert comma["group_by"] == ["service", "model"]
    rated_group = next(g for g in repeated.json()["groups"] if g["service"] == "rated")
    assert (rated_group["model"], rated_group["requests"]) == ("gpt-4o-mini", n)
    bad = httpx.get(server.url + "/api/v1/llm/stats", params={"group_by": "service,colour"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["parameter"] == "group_by"
    assert "'colour'" in bad.json()["error"]["message"]
