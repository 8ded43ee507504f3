"""GET /api/v1/traces/compare and /api/v1/traces/typical on real traces: the demo's chatbot,
retriever and mock LLM (real processes, the llmlens SDK and the real `openai` client) answer four
questions, two of them with an injected failure, so the same root span has three shapes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.demo_services import demo_services
from tests.server_process import ServerProcess

ROOT = ("demo-chatbot", "POST /v1/chat")


@dataclass
class Chats:
    server: ServerProcess
    plain: str           # a first question
    follow_up: str       # the same session's next question: the prompt carries the history
    llm_error: str       # the LLM answers HTTP 500
    retriever_error: str  # the retriever refuses the search: no generation at all


def _chat_traces(server: ServerProcess) -> list[dict[str, Any]]:
    items = httpx.get(server.url + "/api/v1/traces", params={"start": "-1h", "limit": 100,
                                                              "service": ROOT[0]}, timeout=30).json()["items"]
    return sorted((i for i in items if (i["root_service"], i["root_name"]) == ROOT), key=lambda i: i["start_time"])


def _wait_settled(server: ServerProcess, count: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """The chat traces once all `count` have arrived and their span counts stopped changing (each
    service exports its spans on its own schedule)."""
    deadline, last, stable_since = time.monotonic() + timeout_s, None, time.monotonic()
    while time.monotonic() < deadline:
        traces = _chat_traces(server)
        shape = [(t["trace_id"], t["span_count"]) for t in traces]
        if shape != last:
            last, stable_since = shape, time.monotonic()
        elif len(traces) == count and time.monotonic() - stable_since > 3:
            return traces
        time.sleep(0.5)
    raise AssertionError(f"chat traces did not settle: {last}")


@pytest.fixture(scope="module")
def chats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chats]:
    root = tmp_path_factory.mktemp("compare")
    server = ServerProcess(root / "data").start()
    try:
        with demo_services(server, root) as demo:
            assert demo.chat("sess-a", "How do I reset my password?").status_code == 200
            assert demo.chat("sess-a", "And what if the reset link has expired?").status_code == 200
            assert demo.chat("sess-b", "How do I reset my password?", fault="llm_error").status_code == 502
            assert demo.chat("sess-c", "What is the refund policy?", fault="retriever_error").status_code == 502
            traces = _wait_settled(server, 4)
        yield Chats(server, *(t["trace_id"] for t in traces))
    finally:
        server.terminate()


def compare(chats: Chats, a: str, b: str) -> dict[str, Any]:
    answer = httpx.get(chats.server.url + "/api/v1/traces/compare", params={"a": a, "b": b}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def trace(chats: Chats, trace_id: str) -> dict[str, Any]:
    return httpx.get(f"{chats.server.url}/api/v1/traces/{trace_id}", timeout=30).json()


def row(result: dict[str, Any], name: str, occurrence: int = 0) -> dict[str, Any]:
    return next(r for r in result["rows"] if r["name"] == name and r["occurrence"] == occurrence)


def test_every_span_of_both_traces_is_in_exactly_one_row(chats: Chats) -> None:
    for a, b in ((chats.plain, chats.follow_up), (chats.plain, chats.llm_error),
                 (chats.plain, chats.retriever_error), (chats.retriever_error, chats.llm_error)):
        result = compare(chats, a, b)
        for side, trace_id in (("a", a), ("b", b)):
            ids = [r[side]["span_id"] for r in result["rows"] if r[side]]
            assert sorted(ids) == sorted(s["span_id"] for s in trace(chats, trace_id)["spans"])
            assert result[side]["span_count"] == len(ids)
        counts = result["counts"]
        assert counts["matched"] + counts["only_a"] == result["a"]["span_count"]
        assert counts["matched"] + counts["only_b"] == result["b"]["span_count"]


def test_same_shape_aligns_every_span_and_diffs_the_prompt(chats: Chats) -> None:
    """Two answered questions of one session: every span has its counterpart; the LLM call's prompt
    differs by the history and the new question, its model and parameters do not."""
    result = compare(chats, chats.plain, chats.follow_up)
    assert result["counts"]["only_a"] == result["counts"]["only_b"] == 0
    assert (result["a"]["root_service"], result["a"]["root_name"]) == ROOT == (
        result["b"]["root_service"], result["b"]["root_name"])
    for r in result["rows"]:
        assert (r["a"]["kind"], r["service"], r["name"]) == (r["b"]["kind"], r["service"], r["name"])
        assert r["difference"]["duration_ms"] == pytest.approx(r["b"]["duration_ms"] - r["a"]["duration_ms"])
    call = next(r for r in result["rows"] if r["llm"] and r["a"]["llm"]["operation"] == "chat")
    assert call["service"] == "demo-chatbot" and call["name"].startswith("chat ")
    assert call["llm"]["model_changed"] is False and call["llm"]["parameters_changed"] == []
    assert call["a"]["llm"]["parameters"] and call["a"]["llm"]["parameters"] == call["b"]["llm"]["parameters"]
    prompt = call["llm"]["input_diff"]
    assert not prompt["same"]
    added = "\n".join(line for line in prompt["lines"] if line.startswith("+"))
    assert "reset link has expired" in added
    assert not any("reset link has expired" in line for line in prompt["lines"] if line.startswith("-"))
    assert call["difference"]["input_tokens"] == call["b"]["input_tokens"] - call["a"]["input_tokens"] > 0
    assert call["difference"]["cost_usd"] == pytest.approx(call["b"]["cost_usd"] - call["a"]["cost_usd"])
    totals = result["difference"]
    assert totals["input_tokens"] == result["b"]["input_tokens"] - result["a"]["input_tokens"]
    assert totals["duration_ms"] == pytest.approx(result["b"]["duration_ms"] - result["a"]["duration_ms"])


def test_failed_retrieval_marks_the_missing_generation_only_in_a(chats: Chats) -> None:
    """Without retrieved chunks the chatbot never builds a context or calls the LLM: those spans and
    all below them are only in the answered trace; the retrieve step is matched and failed in b."""
    result = compare(chats, chats.plain, chats.retriever_error)
    generate = row(result, "generate")
    assert generate["match"] == "only_a" and generate["b"] is None
    below = result["rows"][result["rows"].index(generate) + 1:]
    subtree = []
    for r in below:
        if r["depth"] <= generate["depth"]:
            break
        subtree.append(r)
    assert subtree and all(r["match"] == "only_a" for r in subtree)
    assert {"demo-mock-llm"} <= {r["service"] for r in subtree}
    retrieve = row(result, "retrieve")
    assert retrieve["match"] == "both"
    assert retrieve["a"]["status"] != "error" and retrieve["b"]["status"] == "error"
    assert result["b"]["error_count"] > 0 and result["b"]["llm_calls"] == 0
    assert result["difference"]["llm_calls"] == -result["a"]["llm_calls"]
    # the same comparison the other way round marks the same spans as only in b
    reverse = compare(chats, chats.retriever_error, chats.plain)
    assert row(reverse, "generate")["match"] == "only_b"
    assert reverse["counts"] == {"matched": result["counts"]["matched"], "only_a": result["counts"]["only_b"],
                                 "only_b": result["counts"]["only_a"]}


def test_failed_llm_call_pairs_the_call_and_shows_its_error(chats: Chats) -> None:
    result = compare(chats, chats.plain, chats.llm_error)
    call = next(r for r in result["rows"] if r["llm"] and r["match"] == "both"
                and r["a"]["llm"]["operation"] == "chat")
    assert call["a"]["llm"]["error_type"] is None and call["b"]["llm"]["error_type"]
    assert call["b"]["status"] == "error"
    assert call["llm"]["output_diff"]["same"] is False  # an answer against none
    assert any(r["match"] == "only_a" for r in result["rows"])  # e.g. the grading of the answer


def test_a_trace_compared_with_itself_differs_in_nothing(chats: Chats) -> None:
    result = compare(chats, chats.plain, chats.plain)
    assert result["counts"]["only_a"] == result["counts"]["only_b"] == 0
    assert all(v in (0, None) for v in result["difference"].values())
    for r in result["rows"]:
        assert all(v in (0, None) for v in r["difference"].values())
        if r["llm"]:
            assert r["llm"]["input_diff"] == {"same": True, "lines": []}


@pytest.mark.parametrize(("params", "parameter"), [
    ({"a": "not-a-trace", "b": "0" * 32}, "a"),
    ({"a": "0" * 32, "b": "abc"}, "b"),
    ({"a": "0" * 32}, "b"),
    ({"b": "0" * 32}, "a"),
])
def test_bad_ids_are_400_naming_the_parameter(chats: Chats, params: dict[str, str], parameter: str) -> None:
    answer = httpx.get(chats.server.url + "/api/v1/traces/compare", params=params, timeout=30)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["parameter"] == parameter


def test_unknown_traces_are_404_naming_the_side(chats: Chats) -> None:
    unknown = "ab" * 16
    for params, side in (({"a": unknown, "b": chats.plain}, "a"), ({"a": chats.plain, "b": unknown}, "b")):
        answer = httpx.get(chats.server.url + "/api/v1/traces/compare", params=params, timeout=30)
        assert answer.status_code == 404, answer.text
        error = answer.json()["error"]
        assert error["parameter"] == side and unknown in error["message"]


def test_typical_trace_is_the_one_nearest_the_median_duration(chats: Chats) -> None:
    traces = _chat_traces(chats.server)
    durations = {t["trace_id"]: t["duration_ms"] for t in traces}

    def typical(**params: str) -> dict[str, Any]:
        answer = httpx.get(chats.server.url + "/api/v1/traces/typical",
                           params={"service": ROOT[0], "name": ROOT[1], "start": "-1h", **params}, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()

    found = typical()
    ordered = sorted(durations, key=lambda t: durations[t])
    middle = ordered[(len(ordered) - 1) // 2]  # the lower middle of an even count: a real trace
    assert found["traces"] == len(durations)
    assert found["trace_id"] == middle and found["median_ms"] == pytest.approx(durations[middle], abs=0.01)
    other = typical(exclude=middle)
    distance = {t: abs(d - durations[middle]) for t, d in durations.items() if t != middle}
    assert other["trace_id"] != middle
    assert distance[other["trace_id"]] == pytest.approx(min(distance.values()), abs=0.01)


def test_typical_trace_errors(chats: Chats) -> None:
    url = chats.server.url + "/api/v1/traces/typical"
    missing = httpx.get(url, params={"service": ROOT[0], "name": "no such span", "start": "-1h"}, timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]["parameter"] == "name"
    for params, parameter in (({"service": ROOT[0]}, "name"), ({"name": ROOT[1]}, "service"),
                              ({"service": ROOT[0], "name": ROOT[1], "exclude": "xyz"}, "exclude"),
                              ({"service": ROOT[0], "name": ROOT[1], "start": "yesterday"}, "start")):
        answer = httpx.get(url, params=params, timeout=30)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["parameter"] == parameter


def test_the_demo_sdk_duration_histogram_in_the_metrics_explorer(chats: Chats) -> None:
    """The same demo run's real OTLP metrics (the llmlens SDK's gen_ai.client.operation.duration, a
    cumulative histogram): the explorer's counts per bucket add up to the points' own totals, and the
    percentiles lie within the bucket bounds the SDK used."""
    name = "gen_ai.client.operation.duration"
    url = chats.server.url
    result = httpx.get(url + "/api/v1/metrics/query", params={"name": name, "start": "-1h",
                                                              "group_by": "gen_ai.request.model"}, timeout=30).json()
    assert result["type"] == "histogram" and result["temporality"] == "cumulative" and result["unit"] == "s"
    lines = {line["labels"]["gen_ai.request.model"]: line for line in result["series"]}
    assert "gpt-4o-mini" in lines
    raw = httpx.get(f"{url}/api/v1/metrics/{name}/series", params={"start": "-1h"}, timeout=30).json()["series"]
    totals = sum(s["points"][-1]["count"] for s in raw if s["attributes"].get("gen_ai.request.model") == "gpt-4o-mini")
    counts = [c for c in lines["gpt-4o-mini"]["values"]["count"] if c is not None]
    assert sum(counts) == totals >= 2  # the answered calls and the failed one
    p50 = [v for v in lines["gpt-4o-mini"]["values"]["p50"] if v is not None]
    assert p50 and all(0 < v <= 10 for v in p50)
