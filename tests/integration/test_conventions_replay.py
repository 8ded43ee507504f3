"""Replay every body captured from agent frameworks and JavaScript instrumentors (tests/fixtures/captures/)
into a real server and check each recorded fact of their EXPECTED.json through the API: model calls
counted once (never agent, chain, tool or workflow steps), their models, tokens, streams, errors, finish
reasons and tool calls; tool search; session and user inherited from an app's span; event-borne content."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llmlens.semconv import MODEL_OPERATIONS
from tests.conftest import CORPUS
from tests.integration.otlp_requests import export_response, new_trace_id
from tests.server_process import ServerProcess

CAPTURES = CORPUS.parent / "captures"
FOLDERS = sorted(p.parent for p in CAPTURES.glob("*/*/EXPECTED.json"))
CASES = [(folder, case) for folder in FOLDERS for case in json.loads((folder / "EXPECTED.json").read_text())["cases"]]


def spec(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "EXPECTED.json").read_text())


def trace_ids(body: bytes) -> set[str]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return {s.trace_id.hex() for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans}


@dataclass
class Replay:
    server: ServerProcess
    answers: dict[str, httpx.Response]
    traces: dict[tuple[str, str], set[str]]  # (capture folder name, case) -> its trace ids


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replay]:
    server = ServerProcess(tmp_path_factory.mktemp("captures") / "data", extra_args=["--retention-days", "3650"]).start()
    try:
        answers, traces = {}, {}
        with httpx.Client(timeout=60) as client:
            for folder in FOLDERS:
                for path in sorted(folder.glob("*.pb")):
                    signal = path.name.split(".")[1]
                    answers[f"{folder.parent.name}/{path.name}"] = client.post(
                        f"{server.url}/v1/{signal}", content=path.read_bytes(),
                        headers={"content-type": "application/x-protobuf"})
                    if signal == "traces":
                        traces.setdefault((folder.parent.name, path.name.split(".")[0]), set()).update(
                            trace_ids(path.read_bytes()))
        yield Replay(server, answers, traces)
    finally:
        if server.proc and server.proc.poll() is None:
            server.terminate()


def get_trace(replay: Replay, trace_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{replay.server.url}/api/v1/traces/{trace_id}", timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["spans"]


def test_every_capture_is_accepted_whole(replay: Replay) -> None:
    """Each captured body gets a 200 that rejects nothing."""
    assert len(replay.answers) >= 35
    for key, answer in replay.answers.items():
        assert answer.status_code == 200, f"{key}: {answer.status_code} {answer.text[:300]}"
        signal = key.split("/")[1].split(".")[1]
        partial = export_response(signal, answer).partial_success
        rejected = partial.rejected_spans if signal == "traces" else partial.rejected_log_records
        assert rejected == 0, f"{key}: {partial.error_message}"


@pytest.mark.parametrize(("folder", "case"), CASES, ids=[f"{f.parent.name}-{c}" for f, c in CASES])
def test_model_calls_counted_once_with_their_facts(replay: Replay, folder: Path, case: str) -> None:
    """The trace API shows exactly the recorded model calls (steps are no calls) with their facts."""
    entry = spec(folder)["cases"][case]
    want = entry["expected"]
    ids = replay.traces.get((folder.parent.name, case), set())
    spans = [s for trace_id in sorted(ids) for s in get_trace(replay, trace_id)]
    assert len(spans) == want["span_count"]
    calls = sorted((s for s in spans if s["llm"] and s["llm"]["operation"] in MODEL_OPERATIONS),
                   key=lambda s: s["start_unix_nano"])
    assert len(calls) == len(want["model_calls"]), [s["name"] for s in calls]
    for span, expected in zip(calls, want["model_calls"], strict=True):
        llm = span["llm"]
        where = f"{folder.parent.name}/{case} {span['name']}"
        assert llm["operation"] == expected["operation"], where
        assert llm["provider"] == expected["provider"], where
        assert llm["request_model"] == expected["request_model"], where
        assert llm["response_model"] == expected["response_model"], where
        assert (llm["input_tokens"], llm["output_tokens"]) == (expected["input_tokens"], expected["output_tokens"]), where
        assert llm["streaming"] is expected["streamed"], where
        assert bool(llm["error_type"]) is expected["errored"], where
        assert llm["finish_reasons"] == expected["finish_reasons"], where
        assert [c["name"] for c in llm["tool_calls"]] == expected["tool_names"], where
        assert llm["tool_names"] == expected["tool_names"], where
    # The trace list sums the same calls and tokens (steps' summed usage never added again).
    listed = [t for trace_id in ids for t in _list_around(replay, trace_id)]
    assert sum(t["llm_calls"] for t in listed) == len(want["model_calls"])
    assert sum(t["input_tokens"] for t in listed) == want["input_tokens"]
    assert sum(t["output_tokens"] for t in listed) == want["output_tokens"]


def _list_around(replay: Replay, trace_id: str) -> list[dict[str, Any]]:
    start = get_trace(replay, trace_id)[0]["start_time"]
    moment = datetime.fromisoformat(start.replace("Z", "+00:00"))
    params = {"start": (moment - timedelta(minutes=1)).isoformat(), "end": (moment + timedelta(minutes=1)).isoformat(),
              "limit": 500}
    items = httpx.get(f"{replay.server.url}/api/v1/traces", params=params, timeout=30).json()["items"]
    return [t for t in items if t["trace_id"] == trace_id]


def test_tool_calls_are_searchable(replay: Replay) -> None:
    """{ tool = "get_weather" } finds every trace whose spans record the tool (as a call's request or a step)."""
    wanted = {tid for (name, case), ids in replay.traces.items() if case == "tools" for tid in ids}
    starts = [datetime.fromisoformat(get_trace(replay, tid)[0]["start_time"].replace("Z", "+00:00")) for tid in wanted]
    params = {"q": '{ tool = "get_weather" }', "start": (min(starts) - timedelta(hours=1)).isoformat(),
              "end": (max(starts) + timedelta(hours=1)).isoformat(), "limit": 200}
    answer = httpx.get(f"{replay.server.url}/api/v1/search", params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    assert wanted <= {t["trace_id"] for t in answer.json()["items"]}
    params["q"] = '{ tool = "no_such_tool" }'
    assert httpx.get(f"{replay.server.url}/api/v1/search", params=params, timeout=30).json()["items"] == []


def test_tool_calls_in_log_events_are_searchable(replay: Replay) -> None:
    """openai-v2 names the requested tool in a gen_ai.choice log event only (another export than the
    span): { tool = "get_weather" } finds its trace, alone and beside an inherited session."""
    (trace_id,) = replay.traces[("openai_v2", "session")]
    moment = datetime.fromisoformat(get_trace(replay, trace_id)[0]["start_time"].replace("Z", "+00:00"))
    params = {"start": (moment - timedelta(minutes=5)).isoformat(), "end": (moment + timedelta(minutes=5)).isoformat(),
              "limit": 200}
    for query, found in (('{ tool = "get_weather" }', True), ('{ tool =~ "get_.*" && session = "sess-v2" }', True),
                         ('{ tool = "get_weather" && session = "other" }', False), ('{ tool = "get_time" }', False),
                         ('{ tool != nil && span.gen_ai.request.model = "gpt-4o-mini" }', True)):
        answer = httpx.get(f"{replay.server.url}/api/v1/search", params={**params, "q": query}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert (trace_id in {t["trace_id"] for t in answer.json()["items"]}) is found, query


def _session_trace(replay: Replay) -> list[dict[str, Any]]:
    (trace_id,) = replay.traces[("openai_v2", "session")]
    return get_trace(replay, trace_id)


def test_openai_v2_calls_inherit_session_user_app_department(replay: Replay) -> None:
    """openai-v2 puts nothing on its calls; the app's request span above them holds session and user."""
    calls = [s["llm"] for s in _session_trace(replay) if s["llm"]]
    assert len(calls) == 2
    for llm in calls:
        assert (llm["session_id"], llm["user_id"], llm["app"], llm["department"]) == ("sess-v2", "user-v2", "support", "cx")
    moment = datetime.fromisoformat(_session_trace(replay)[0]["start_time"].replace("Z", "+00:00"))
    window = {"start": (moment - timedelta(days=1)).isoformat(), "end": (moment + timedelta(days=1)).isoformat()}
    sessions = httpx.get(f"{replay.server.url}/api/v1/sessions/sess-v2", params=window, timeout=30)
    assert sessions.status_code == 200, sessions.text
    assert sessions.json()["llm_calls"] == 2


def test_event_borne_prompt_response_and_tool_calls_in_the_llm_panel(replay: Replay) -> None:
    """openai-v2's log events become the calls' prompt, response and tool calls in the trace view."""
    chat, tool = sorted((s for s in _session_trace(replay) if s["llm"]), key=lambda s: s["start_unix_nano"])
    assert chat["llm"]["input"] == "system: You are terse.\nuser: What is OTLP?"
    assert chat["llm"]["output"].startswith("assistant: ")
    assert tool["llm"]["input"] == "user: What is the weather in Paris?"
    assert [c["name"] for c in tool["llm"]["tool_calls"]] == ["get_weather"]
    assert "Paris" in tool["llm"]["tool_calls"][0]["arguments"]


def test_inheritance_when_the_parent_arrives_in_a_later_request(llmlens_server: ServerProcess) -> None:
    """Children exported before their parent (another request): the trace view still inherits."""
    body = (CAPTURES / "openai_v2" / "opentelemetry-instrumentation-openai-v2-2.4b0" / "session.traces.pb").read_bytes()
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    trace_id = new_trace_id()
    children, parent = ExportTraceServiceRequest(), ExportTraceServiceRequest()
    for target, keep in ((children, lambda s: bool(s.parent_span_id)), (parent, lambda s: not s.parent_span_id)):
        target.CopyFrom(request)
        for rs in target.resource_spans:
            for ss in rs.scope_spans:
                kept = [s for s in ss.spans if keep(s)]
                del ss.spans[:]
                for span in kept:
                    span.trace_id = trace_id
                    ss.spans.append(span)
    for part in (children, parent):
        answer = httpx.post(f"{llmlens_server.url}/v1/traces", content=part.SerializeToString(),
                            headers={"content-type": "application/x-protobuf"}, timeout=30)
        assert answer.status_code == 200, answer.text
    spans = httpx.get(f"{llmlens_server.url}/api/v1/traces/{trace_id.hex()}", timeout=30).json()["spans"]
    calls = [s["llm"] for s in spans if s["llm"]]
    assert len(calls) == 2
    for llm in calls:
        assert (llm["session_id"], llm["user_id"]) == ("sess-v2", "user-v2")
        assert llm["inherited"] == ["app", "department", "session_id", "user_id"]

