"""An app on the llmlens SDK sets `session.id` and `user.id` on a plain OpenTelemetry span; its LLM call,
made with the SDK's openai instrumentation against the demo's mock LLM, is exported in another request
than that span (the batch processor flushed between them). A real server still finds the call by the
session and the user: Sessions list and detail, `{ session = ... }` search, costs by user."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from opentelemetry import context, trace

import llmlens
from tests.server_process import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("sdk-context") / "data").start()
    yield process
    process.terminate()


def _flush() -> None:
    assert trace.get_tracer_provider().force_flush(10_000)


def _get(server: ServerProcess, path: str, **params: Any) -> Any:
    answer = httpx.get(f"{server.url}{path}", params={"start": "-1h", **params}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("parent_comes", ["later", "earlier"])
def test_session_on_a_plain_parent_span_reaches_the_sdk_llm_call(server, mock_llm_url, parent_comes) -> None:
    session, user = f"sdk-sess-{uuid.uuid4().hex[:8]}", f"sdk-user-{uuid.uuid4().hex[:8]}"
    llmlens.init(service_name="sdk-context-app", endpoint=server.url)
    try:
        client = openai.OpenAI(base_url=mock_llm_url, api_key="test-key", max_retries=0)
        tracer = trace.get_tracer("app")
        parent = tracer.start_span("handle_request", attributes={"session.id": session, "user.id": user})
        trace_id = format(parent.get_span_context().trace_id, "032x")
        under_parent = trace.set_span_in_context(parent)
        if parent_comes == "earlier":
            parent.end()
            _flush()  # the request span goes out alone, before the call exists
        token = context.attach(under_parent)
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
        finally:
            context.detach(token)
        _flush()  # the LLM span goes out alone
        if parent_comes == "later":
            parent.end()
            _flush()
    finally:
        llmlens.shutdown()

    detail = _get(server, f"/api/v1/sessions/{session}")
    assert (detail["llm_calls"], detail["users"], [t["trace_id"] for t in detail["traces"]]) == (1, [user], [trace_id])
    listed = {s["session_id"]: s for s in _get(server, "/api/v1/sessions", limit=1000)["items"]}
    assert listed[session]["llm_calls"] == 1
    assert listed[session]["users"] == [user]
    found = _get(server, "/api/v1/search", q=f'{{ session = "{session}" }}')["items"]
    assert [t["trace_id"] for t in found] == [trace_id]
    by_user = {row["key"]: row for row in _get(server, "/api/v1/costs", group_by="user")["breakdown"]}
    assert by_user[user]["requests"] == 1
    # The trace view agrees.
    spans = _get(server, f"/api/v1/traces/{trace_id}")["spans"]
    assert {s["name"] for s in spans} >= {"handle_request"}
    assert [s["llm"]["session_id"] for s in spans if s["llm"]] == [session]
