"""GET /api/v1/search on a real server: each operator's compiled SQL runs on the real store and
returns exactly the seeded traces it should. (No browser needed; it shares the seeded server.)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median

import httpx
import pytest

from tests.browser.seed import Seeded

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "otlp"


def search(server, q: str, **params) -> httpx.Response:
    return httpx.get(server.url + "/api/v1/search", params={"q": q, "start": "-24h", "limit": 1000, **params},
                     timeout=30)


def found(server, q: str) -> set[str]:
    response = search(server, q)
    assert response.status_code == 200, response.text
    return {item["trace_id"] for item in response.json()["items"]}


def traces(seeded: Seeded, predicate) -> set[str]:
    return {t.trace_id for t in seeded.turns if predicate(t)}


def test_numeric_operators_on_normalised_tokens(seeded_server) -> None:
    server, seeded = seeded_server
    values = sorted(t.input_tokens for t in seeded.turns)
    pivot = values[len(values) // 2]
    cases = {
        ">": lambda t: t.input_tokens > pivot, ">=": lambda t: t.input_tokens >= pivot,
        "<": lambda t: t.input_tokens < pivot, "<=": lambda t: t.input_tokens <= pivot,
        "=": lambda t: t.input_tokens == pivot,
    }
    for op, predicate in cases.items():
        assert found(server, f"{{ span.gen_ai.usage.input_tokens {op} {pivot} }}") == traces(seeded, predicate), op
    # != on an LLM fact only matches spans that have it (the LLM span), never the HTTP or retrieval spans.
    assert found(server, f"{{ span.gen_ai.usage.input_tokens != {pivot} }}") == traces(
        seeded, lambda t: t.input_tokens != pivot)


def test_string_operators_and_regex(seeded_server) -> None:
    server, seeded = seeded_server
    assert found(server, '{ span.gen_ai.request.model = "gpt-4o" }') == traces(seeded, lambda t: t.model == "gpt-4o")
    assert found(server, '{ span.gen_ai.request.model != "gpt-4o" }') == traces(seeded, lambda t: t.model != "gpt-4o")
    assert found(server, '{ name =~ "^chat gpt-4o" }') == traces(seeded, lambda t: t.model.startswith("gpt-4o"))
    assert found(server, '{ name !~ "^(POST|retrieve|chat gpt)" }') == traces(seeded, lambda t: t.model == "acme-llm-1")
    assert found(server, '{ resource.service.name = "chatbot" }') == traces(seeded, lambda t: t.service == "chatbot")
    assert found(server, '{ resource.deployment.environment = "test" }') == traces(seeded, lambda t: True)
    assert found(server, '{ .deployment.environment = "test" && span.http.route = "/chat" }') == traces(
        seeded, lambda t: True)


def test_intrinsics_status_kind_duration(seeded_server) -> None:
    server, seeded = seeded_server
    assert found(server, "{ status = error }") == traces(seeded, lambda t: t.error)
    assert found(server, "{ kind = server && status = ok }") == traces(seeded, lambda t: not t.error)
    threshold = median(t.duration_ms for t in seeded.turns)
    # Root spans are the longest spans of each trace; stay clear of exact-boundary rounding.
    assert found(server, f"{{ duration > {threshold + 0.5:.1f}ms }}") == traces(
        seeded, lambda t: t.duration_ms > threshold + 0.5)
    assert found(server, "{ duration > 1h }") == set()
    assert found(server, "{ ttft > 1ms && ttft < 1s }") == traces(seeded, lambda t: not t.error)
    assert found(server, '{ errorType = "RateLimitError" }') == traces(seeded, lambda t: t.error)
    assert found(server, '{ model = "acme-llm-1" }') == traces(seeded, lambda t: t.model == "acme-llm-1")


def test_spansets_combine_per_trace(seeded_server) -> None:
    server, seeded = seeded_server
    chatbot_errors = found(server, '{ resource.service.name = "chatbot" } && { status = error }')
    assert chatbot_errors == traces(seeded, lambda t: t.service == "chatbot" and t.error)
    either = found(server, '{ span.gen_ai.request.model = "gpt-4o" } || { status = error }')
    assert either == traces(seeded, lambda t: t.model == "gpt-4o" or t.error)
    # Both conditions on one span vs. on any two spans of the trace.
    same_span = found(server, '{ span.http.route = "/chat" && span.gen_ai.request.model = "gpt-4o" }')
    assert same_span == set()
    any_span = found(server, '{ span.http.route = "/chat" } && { span.gen_ai.request.model = "gpt-4o" }')
    assert any_span == traces(seeded, lambda t: t.model == "gpt-4o")


def test_items_have_the_traces_api_shape(seeded_server) -> None:
    server, _ = seeded_server
    item = search(server, "{ status = error }").json()["items"][0]
    listed = httpx.get(server.url + "/api/v1/traces", params={"start": "-24h", "status": "error", "limit": 100}).json()
    same = next(i for i in listed["items"] if i["trace_id"] == item["trace_id"])
    assert item == same


@pytest.mark.parametrize("hostile", [
    "x' OR 1=1 --", "'; DROP TABLE otel_traces; --", 'a\\"b', "back\\\\slash\\\\n", "{q0:String}"])
def test_hostile_text_is_only_data(seeded_server, hostile: str) -> None:
    server, _ = seeded_server
    spans_before = server.status()["spans"]
    response = search(server, f'{{ name = "{hostile}" || span.x =~ "{hostile}" }}')
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200:
        assert response.json()["items"] == []
    assert server.status()["spans"] == spans_before
    assert found(server, "{ }")  # the table is still there


def test_bad_queries_answer_400_with_the_position(seeded_server) -> None:
    server, _ = seeded_server
    response = search(server, '{ name = "a" && }')
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["parameter"], error["position"]) == ("bad_query", "q", 16)
    assert "column 17" in error["message"]
    # RE2 refuses what Python's re accepts: still the query's fault, still a 400.
    re2 = search(server, '{ name =~ "a{1001}" }')
    assert re2.status_code == 400 and re2.json()["error"]["code"] == "bad_query"
    assert search(server, "{ span.n > 1e999 }").json()["error"]["position"] == 11
    assert search(server, "{ }", start="not-a-time").json()["error"]["parameter"] == "start"


def test_genai_names_match_other_conventions(llmlens_server) -> None:
    """OpenInference (Phoenix) spans carry llm.token_count.prompt / llm.model_name: the GenAI names
    still find them, through the normalised llm_calls row."""
    body = (CORPUS / "phoenix" / "chat.traces.json").read_bytes()
    expected = json.loads((CORPUS / "phoenix" / "EXPECTED.json").read_text())["cases"]["chat"]["expected"]
    response = httpx.post(llmlens_server.url + "/v1/traces", content=body,
                          headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 200
    start_ns = int(json.loads(body)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"])
    at = datetime.fromtimestamp(start_ns / 1e9, UTC)
    window = {"start": (at - timedelta(hours=1)).isoformat(), "end": (at + timedelta(hours=1)).isoformat()}
    q = (f'{{ span.gen_ai.request.model = "{expected["request_model"]}" && '
         f'span.gen_ai.usage.input_tokens = {expected["input_tokens"]} && '
         f'span.gen_ai.usage.output_tokens = {expected["output_tokens"]} }}')
    items = search(llmlens_server, q, **window).json()["items"]
    assert len(items) == 1
    assert search(llmlens_server, "{ span.gen_ai.usage.input_tokens > 1000 }", **window).json()["items"] == []
