"""The convention mapping: every corpus body, and hand-built spans of the conventions the
corpus lacks (legacy OpenLLMetry, Langfuse, deprecated GenAI names)."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llmlens import semconv
from llmlens.server.decode.attributes import key_values
from llmlens.server.decode.messages import decode_request
from tests.conftest import CORPUS

INSTRUMENTORS = ["otel", "traceloop", "openlit", "phoenix"]


def _cases():
    for name in INSTRUMENTORS:
        expected = json.loads((CORPUS / name / "EXPECTED.json").read_text())
        for case, spec in expected["cases"].items():
            for fmt in ("pb", "json"):
                yield pytest.param(name, case, fmt, spec, id=f"{name}-{case}-{fmt}")


def _llm_spans(name: str, case: str, fmt: str):
    body = (CORPUS / name / f"{case}.traces.{fmt}").read_bytes()
    request = decode_request(ExportTraceServiceRequest, body, "protobuf" if fmt == "pb" else "json")
    found = []
    for rs in request.resource_spans:
        resource = key_values(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                attrs = key_values(span.attributes)
                events = [(e.time_unix_nano, e.name, key_values(e.attributes)) for e in span.events]
                facts = semconv.extract_llm_facts(
                    attrs, resource, span_name=span.name, scope_name=ss.scope.name,
                    status_error=span.status.code == 2, events=events, start_time_ns=span.start_time_unix_nano)
                if facts is not None:
                    found.append((span, facts))
    return found


@pytest.mark.parametrize(("name", "case", "fmt", "spec"), list(_cases()))
def test_corpus_facts(name, case, fmt, spec):
    """Each recorded fact of each real instrumentor's body is extracted, and only LLM spans yield facts."""
    expected = spec["expected"]
    spans = _llm_spans(name, case, fmt)
    assert len(spans) == expected["llm_span_count"]
    _, facts = spans[0]
    for fact in ("request_model", "response_model", "input_tokens", "output_tokens"):
        if expected.get(fact) is not None:
            assert getattr(facts, fact) == expected[fact], fact
    if expected.get("streamed") is not None:
        assert facts.streaming == expected["streamed"]
    if expected.get("errored"):
        assert facts.error_type, "an errored call carries an error type"
    assert facts.operation == ("embeddings" if case == "embeddings" else "chat")
    assert facts.provider == "openai"


@pytest.mark.parametrize("name", ["traceloop", "phoenix", "openlit"])
def test_streamed_calls_have_time_to_first_token(name):
    """Instrumentors that record the first chunk yield a TTFT; it is shorter than the call."""
    span, facts = _llm_spans(name, "stream", "pb")[0]
    assert facts.ttft_ms is not None and facts.ttft_ms > 0
    assert facts.ttft_ms <= (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6 + 1


def test_non_llm_span_yields_nothing():
    """An HTTP span is not an LLM operation."""
    assert semconv.extract_llm_facts({"http.method": "POST", "http.url": "http://x"}) is None


def test_deprecated_genai_names():
    """gen_ai.system, prompt_tokens/completion_tokens and old provider spellings still normalise."""
    facts = semconv.extract_llm_facts({
        "gen_ai.system": "az.ai.openai", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.prompt_tokens": 12,
        "gen_ai.usage.completion_tokens": "7", "gen_ai.request.is_stream": True,
    })
    assert facts is not None
    assert (facts.provider, facts.input_tokens, facts.output_tokens, facts.streaming) == ("azure.ai.openai", 12, 7, True)
    assert facts.operation == "chat"


def test_openllmetry_legacy_indexed_prompts():
    """OpenLLMetry <= 0.4: llm.request.type, indexed gen_ai.prompt.N.* attributes, cache tokens with underscores."""
    facts = semconv.extract_llm_facts({
        "llm.request.type": "chat", "gen_ai.system": "OpenAI", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.prompt_tokens": 100, "gen_ai.usage.completion_tokens": 20,
        "gen_ai.usage.cache_read_input_tokens": 64, "llm.is_streaming": False,
        "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "hello",
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "hi there",
        "traceloop.association.properties.session_id": "s-1", "llm.user": "u-9",
    })
    assert facts is not None and facts.convention == "openllmetry"
    assert (facts.operation, facts.provider, facts.cached_input_tokens) == ("chat", "openai", 64)
    assert (facts.input, facts.output) == ("hello", "hi there")
    assert (facts.session_id, facts.user_id) == ("s-1", "u-9")


def test_langfuse_observation_attributes():
    """Langfuse's OTel attributes: observation type, model, usage and cost details as JSON."""
    facts = semconv.extract_llm_facts({
        "langfuse.observation.type": "generation",
        "langfuse.observation.model.name": "claude-3-5-sonnet",
        "langfuse.observation.usage_details": json.dumps({"input": 50, "output": 10, "input_cached_tokens": 5}),
        "langfuse.observation.cost_details": json.dumps({"input": 0.001, "output": 0.002}),
        "langfuse.observation.input": "question", "langfuse.observation.output": "answer",
        "langfuse.user.id": "alice", "langfuse.session.id": "conv-7",
    })
    assert facts is not None and facts.convention == "langfuse"
    assert (facts.operation, facts.request_model, facts.input_tokens, facts.output_tokens) == (
        "chat", "claude-3-5-sonnet", 50, 10)
    assert facts.cached_input_tokens == 5
    assert facts.cost_usd == pytest.approx(0.003)
    assert (facts.user_id, facts.session_id, facts.input, facts.output) == ("alice", "conv-7", "question", "answer")


def test_openinference_retriever_and_tool_kinds():
    """OpenInference span kinds map to GenAI operation names."""
    assert semconv.extract_llm_facts({"openinference.span.kind": "RETRIEVER"}).operation == "retrieval"
    assert semconv.extract_llm_facts({"openinference.span.kind": "TOOL"}).operation == "execute_tool"
    assert semconv.extract_llm_facts({"openinference.span.kind": "EMBEDDING"}).operation == "embeddings"


def test_app_department_user_session_from_resource():
    """Span attributes win; the resource fills what the span lacks."""
    facts = semconv.extract_llm_facts(
        {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "session.id": "s-span"},
        {"llmlens.app": "support", "llmlens.department": "cx", "session.id": "s-resource", "user.id": "u-res"},
    )
    assert (facts.app, facts.department, facts.session_id, facts.user_id) == ("support", "cx", "s-span", "u-res")


def test_current_genai_messages_render_as_text():
    """gen_ai.input.messages / output.messages (JSON strings) become readable role-prefixed text."""
    facts = semconv.extract_llm_facts({
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "2+2?"}]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "4"}],
                                               "finish_reason": "stop"}]),
        "gen_ai.usage.reasoning.output_tokens": 3, "gen_ai.response.time_to_first_chunk": 0.25,
        "gen_ai.request.stream": True,
    })
    assert (facts.input, facts.output) == ("user: 2+2?", "assistant: 4")
    assert facts.reasoning_tokens == 3 and facts.ttft_ms == pytest.approx(250)


@pytest.mark.parametrize("bad", ["", "NaN", "-5", "1e999", "abc", None, [], {}, True])
def test_hostile_token_values_never_raise(bad):
    """Garbage in token and cost attributes normalises to 0 / None, never an exception."""
    facts = semconv.extract_llm_facts({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": bad,
                                       "gen_ai.usage.cost": bad, "gen_ai.response.finish_reasons": bad})
    assert facts.input_tokens >= 0
    assert facts.cost_usd is None or isinstance(facts.cost_usd, float)


def test_long_prompts_are_capped():
    """Prompt text on the normalised row is capped at MAX_TEXT characters."""
    facts = semconv.extract_llm_facts({"gen_ai.operation.name": "chat", "input.value": "x" * 100_000})
    assert len(facts.input) <= semconv.MAX_TEXT + 1


def test_llmlens_step_kinds_are_not_model_calls():
    """An @observe(kind="embedding") step is a pipeline step, not a call to an embeddings model."""
    facts = semconv.extract_llm_facts({"llmlens.span.kind": "embedding"})
    assert facts.operation == "embedding"
    assert facts.operation not in semconv.MODEL_OPERATIONS


CAPTURES = CORPUS.parent / "captures"


def _capture_facts(name: str):
    request = decode_request(ExportTraceServiceRequest, (CAPTURES / name).read_bytes(), "protobuf")
    out = []
    for rs in request.resource_spans:
        resource = key_values(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                events = [(e.time_unix_nano, e.name, key_values(e.attributes)) for e in span.events]
                out.append((span, semconv.extract_llm_facts(
                    key_values(span.attributes), resource, span_name=span.name, scope_name=ss.scope.name,
                    events=events, start_time_ns=span.start_time_unix_nano)))
    return out


def test_langfuse_capture():
    """A real Langfuse export: model, usage JSON, user and session, finish reason and TTFT of the stream."""
    (_, chat), (stream_span, stream) = _capture_facts("langfuse_openai.traces.pb")
    for facts in (chat, stream):
        assert (facts.convention, facts.operation) == ("langfuse", "chat")
        assert (facts.response_model, facts.input_tokens, facts.output_tokens) == ("gpt-4o-mini-2024-07-18", 14, 32)
        assert facts.input == "system: You are terse.\nuser: What is OTLP?"
        assert facts.output
    assert (chat.user_id, chat.session_id) == ("user-42", "sess-7")
    assert chat.streaming is None and chat.ttft_ms is None
    assert stream.streaming is True and stream.finish_reasons == ["length"]
    assert 0 < stream.ttft_ms <= (stream_span.end_time_unix_nano - stream_span.start_time_unix_nano) / 1e6


def test_openai_v2_latest_semconv_capture():
    """openai-v2 on the latest GenAI conventions: provider name, messages as JSON, finish reasons."""
    (_, chat), (_, stream) = _capture_facts("openai_v2_latest_semconv.traces.pb")
    for facts in (chat, stream):
        assert (facts.convention, facts.provider, facts.request_model) == ("otel", "openai", "gpt-4o-mini")
        assert (facts.input_tokens, facts.output_tokens) == (14, 32)
        assert facts.input == "system: You are terse.\nuser: What is OTLP?"
        assert facts.output.startswith("assistant: ")
    assert chat.finish_reasons == ["length"]


def test_tool_calls_found_past_the_shortcuts():
    """tool_calls skips parsing answers and scanning keys that cannot name a tool; these can."""
    escaped = json.dumps([{"role": "assistant", "parts": [{"type": "tool_call", "name": "get_weather"}]}])
    escaped = escaped.replace("tool_call", "tool\\u005fcall")  # the same JSON, the word never spelled out
    assert semconv.tool_calls({semconv.OUTPUT_MESSAGES: escaped}) == [("get_weather", "")]
    flat = {"llm.output_messages.0.message.tool_calls.1.tool_call.function.name": "b",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "a",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"x":1}'}
    assert semconv.tool_calls(flat) == [("a", '{"x":1}'), ("b", "")]
    assert semconv.tool_calls({"gen_ai.completion.0.function_call.name": "f"}) == [("f", "")]
    plain = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "no tools"}]}])
    assert semconv.tool_calls({semconv.OUTPUT_MESSAGES: plain, "llm.output_messages.0.message.role": "x"}) == []
