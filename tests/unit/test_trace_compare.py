"""The span-tree alignment of two traces and the text diff, on span dicts shaped as the API returns them."""

from __future__ import annotations

from typing import Any

from llmlens.server.query.compare import align, parameters, text_diff


def span(span_id: str, name: str, parent: str | None = None, start: int = 0, service: str = "app",
         duration_ms: float = 1.0) -> dict[str, Any]:
    return {"span_id": span_id, "parent_span_id": parent, "service": service, "name": name, "kind": "internal",
            "start_unix_nano": start, "duration_ms": duration_ms, "status": "ok", "status_message": None,
            "start_time": "", "attributes": {}, "llm": None}


def shape(rows: list[dict[str, Any]]) -> list[tuple[int, str, int, str]]:
    return [(r["depth"], r["name"], r["occurrence"], r["match"]) for r in rows]


def test_repeated_siblings_pair_by_occurrence_in_start_order() -> None:
    a = [span("r", "root"), span("t1", "tool", "r", 10), span("t2", "tool", "r", 20), span("x", "inner", "t2", 21)]
    b = [span("R", "root"), span("T1", "tool", "R", 5), span("T2", "tool", "R", 6), span("T3", "tool", "R", 7),
         span("X", "inner", "T1", 6)]
    rows = align(a, b)
    assert shape(rows) == [(0, "root", 0, "both"), (1, "tool", 0, "both"), (2, "inner", 0, "only_b"),
                           (1, "tool", 1, "both"), (2, "inner", 0, "only_a"), (1, "tool", 2, "only_b")]
    assert [(r["a"] or {}).get("span_id") for r in rows] == ["r", "t1", None, "t2", "x", None]


def test_a_span_only_in_b_sits_after_its_preceding_b_sibling() -> None:
    a = [span("r", "root"), span("a1", "first", "r", 1), span("a3", "third", "r", 3)]
    b = [span("R", "root"), span("b0", "zeroth", "R", 0), span("b1", "first", "R", 1), span("b2", "second", "R", 2),
         span("b3", "third", "R", 3)]
    assert [r["name"] for r in align(a, b)] == ["root", "zeroth", "first", "second", "third"]


def test_service_is_part_of_the_key_and_alignment_is_stable() -> None:
    a = [span("r", "root"), span("c", "POST", "r", 1, service="chatbot")]
    b = [span("R", "root"), span("C", "POST", "R", 1, service="retriever")]
    rows = align(a, b)
    # b's POST has no matched sibling before it, so it comes first
    assert shape(rows) == [(0, "root", 0, "both"), (1, "POST", 0, "only_b"), (1, "POST", 0, "only_a")]
    assert align(a, b) == rows


def test_text_diff_shows_added_and_removed_lines() -> None:
    diff = text_diff("system: be brief\nuser: hi", "system: be brief\nuser: hello\nassistant: ok")
    assert not diff["same"]
    assert "-user: hi" in diff["lines"] and "+user: hello" in diff["lines"] and "+assistant: ok" in diff["lines"]
    assert " system: be brief" in diff["lines"]
    assert text_diff(None, "") == {"same": True, "lines": []}


def test_parameters_from_either_convention() -> None:
    found = parameters({"gen_ai.request.temperature": "0.2", "gen_ai.request.model": "m",
                        "llm.invocation_parameters": '{"top_p": 0.9, "model": "m"}', "other": "x"})
    assert found == {"temperature": "0.2", "top_p": "0.9"}


def test_model_calls_match_by_operation_whatever_the_model() -> None:
    def call(span_id: str, model: str, parent: str) -> dict[str, Any]:
        llm = {"operation": "chat", "provider": "openai", "request_model": model, "response_model": model,
               "input_tokens": 1, "output_tokens": 2, "cost_usd": 0.5, "priced": True, "ttft_ms": None,
               "finish_reasons": [], "error_type": None}
        return {**span(span_id, f"chat {model}", parent, 1), "llm": llm}

    rows = align([span("r", "root"), call("c", "gpt-4o", "r")], [span("R", "root"), call("C", "gpt-4o-mini", "R")])
    assert [(r["name"], r["name_b"], r["match"]) for r in rows] == [("root", None, "both"),
                                                                     ("chat gpt-4o", "chat gpt-4o-mini", "both")]
