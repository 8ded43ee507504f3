"""Session and user set on an app's request span reach the LLM calls under it when the spans come in
different export requests (a BatchSpanProcessor exports the child LLM spans before their parent, or a
long request's parent after its children's batch): the Sessions list and detail, `{ session = ... }` /
`{ user = ... }` search, costs by user and the user filter, LLM stats grouped by or filtered on user,
session, app and department all find the calls. openai-v2's capture, split, on a real server."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import CORPUS
from tests.integration.otlp_requests import new_trace_id
from tests.server_process import ServerProcess

CAPTURE = CORPUS.parent / "captures" / "openai_v2" / "opentelemetry-instrumentation-openai-v2-2.4b0" / "session.traces.pb"


def _split(session: str, user: str, app: str = "support", department: str = "cx") -> tuple[bytes, bytes, str]:
    """The capture's LLM calls and its request span as two requests of one new trace, moved to now,
    the request span carrying `session`, `user`, `app` and `department`. -> (children, parent, trace id)."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(CAPTURE.read_bytes())
    trace_id = new_trace_id()
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    shift = time.time_ns() - 60_000_000_000 - min(s.start_time_unix_nano for s in spans)
    parts = []
    for keep in (lambda s: bool(s.parent_span_id), lambda s: not s.parent_span_id):
        part = ExportTraceServiceRequest()
        part.CopyFrom(request)
        for rs in part.resource_spans:
            for ss in rs.scope_spans:
                kept = [s for s in ss.spans if keep(s)]
                del ss.spans[:]
                for span in kept:
                    span.trace_id = trace_id
                    span.start_time_unix_nano += shift
                    span.end_time_unix_nano += shift
                    for attribute in span.attributes:
                        if attribute.key == "session.id":
                            attribute.value.string_value = session
                        elif attribute.key == "user.id":
                            attribute.value.string_value = user
                        elif attribute.key == "llmlens.app":
                            attribute.value.string_value = app
                        elif attribute.key == "department":
                            attribute.value.string_value = department
                    ss.spans.append(span)
        parts.append(part.SerializeToString())
    return parts[0], parts[1], trace_id.hex()


def _get(server: ServerProcess, path: str, **params: Any) -> Any:
    answer = httpx.get(f"{server.url}{path}", params={"start": "-1h", **params}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("parent_comes", ["later", "earlier"])
def test_calls_find_their_trace_session_and_user(llmlens_server: ServerProcess, parent_comes: str) -> None:
    session, user = f"sess-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:8]}"
    app, department = f"app-{uuid.uuid4().hex[:8]}", f"dept-{uuid.uuid4().hex[:8]}"
    children, parent, trace_id = _split(session, user, app, department)
    order = (children, parent) if parent_comes == "later" else (parent, children)
    for body in order:
        answer = httpx.post(f"{llmlens_server.url}/v1/traces", content=body,
                            headers={"content-type": "application/x-protobuf"}, timeout=30)
        assert answer.status_code == 200, answer.text

    listed = {s["session_id"]: s for s in _get(llmlens_server, "/api/v1/sessions", limit=1000)["items"]}
    assert session in listed, sorted(listed)
    assert (listed[session]["llm_calls"], listed[session]["turns"], listed[session]["users"]) == (2, 1, [user])

    detail = _get(llmlens_server, f"/api/v1/sessions/{session}")
    assert (detail["llm_calls"], detail["users"], [t["trace_id"] for t in detail["traces"]]) == (2, [user], [trace_id])
    assert detail["traces"][0]["root_name"] == "handle_request"

    for query in (f'{{ session = "{session}" }}', f'{{ user = "{user}" }}',
                  f'{{ session = "{session}" && model = "gpt-4o-mini" }}'):
        found = _get(llmlens_server, "/api/v1/search", q=query)["items"]
        assert [t["trace_id"] for t in found] == [trace_id], query
    assert _get(llmlens_server, "/api/v1/search", q=f'{{ session = "{session}-other" }}')["items"] == []

    by_user = {row["key"]: row for row in _get(llmlens_server, "/api/v1/costs", group_by="user")["breakdown"]}
    assert by_user[user]["requests"] == 2
    assert by_user[user]["input_tokens"] > 0
    assert _get(llmlens_server, "/api/v1/costs", user=user)["totals"]["requests"] == 2
    assert _get(llmlens_server, "/api/v1/costs", user=f"{user}-other")["totals"]["requests"] == 0

    # LLM stats: grouped by each inherited fact, and filtered on it, the two calls are the trace's.
    for name, value in (("user", user), ("session", session), ("app", app), ("department", department)):
        groups = {g[name]: g for g in _get(llmlens_server, "/api/v1/llm/stats", group_by=name)["groups"]}
        assert groups.get(value, {}).get("requests") == 2, (name, sorted(groups))
        assert groups[value]["input_tokens"] > 0
        (only,) = _get(llmlens_server, "/api/v1/llm/stats", **{name: value})["groups"]
        assert only["requests"] == 2, name
        assert _get(llmlens_server, "/api/v1/llm/stats", **{name: f"{value}-other"})["groups"] == [], name
    both = _get(llmlens_server, "/api/v1/llm/stats", group_by="app,user", department=department)["groups"]
    assert [(g["app"], g["user"], g["requests"]) for g in both] == [(app, user, 2)]
