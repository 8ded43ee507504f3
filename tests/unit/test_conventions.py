"""One test a rule of the conventions normaliser, on hand-built spans (the captures cover the real shapes:
tests/integration/test_conventions_replay.py)."""

from __future__ import annotations

import json

from llmlens import semconv
from llmlens.server.normalise import normalise_spans
from llmlens.server.normalise.cost import build_cost_model
from llmlens.server.store.columns import TABLES

CALL_COLUMNS = [name for name, _ in TABLES["llm_calls"]]


def facts(attributes, **kwargs):
    found = semconv.extract_llm_facts(attributes, **kwargs)
    assert found is not None
    return found


def test_rule1_steps_carry_no_usage_or_cost():
    """An agent span's summed usage (older Pydantic AI names it gen_ai.usage.*) is not the agent's to count."""
    agent = facts({"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 47,
                   "gen_ai.usage.output_tokens": 31, "gen_ai.usage.cost": 0.01})
    assert (agent.input_tokens, agent.output_tokens, agent.cost_usd) == (0, 0, None)
    workflow = facts({"ai.operationId": "ai.generateText", "ai.usage.inputTokens": 47, "ai.model.id": "gpt-4o-mini"})
    assert workflow.operation == "invoke_workflow" and workflow.input_tokens == 0
    prepare = facts({"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini"},
                    span_name="OpenAI._prepare_chat_with_tools", scope_name="openinference.instrumentation.llama_index")
    assert prepare.operation not in semconv.MODEL_OPERATIONS


def test_rule1_logfire_stream_is_one_call():
    """Logfire's request half (no answer) is a step; its streamed-response record is the call, with its duration."""
    common = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.system": "openai"}
    request = facts({**common, "logfire.span_type": "span"}, scope_name="logfire.openai",
                    span_name="Chat Completion with {request_data[model]!r}")
    record_attrs = {**common, "logfire.span_type": "log", "duration": 0.25, "gen_ai.response.id": "x",
                    "gen_ai.usage.input_tokens": 14}
    record = facts(record_attrs, scope_name="logfire.openai", span_name="streaming response from {request_data[model]!r}")
    assert request.operation not in semconv.MODEL_OPERATIONS
    assert record.operation == "chat" and record.streaming is True and record.input_tokens == 14
    assert semconv.reported_duration_ns(record_attrs, record) == 250_000_000


def test_rule2_streams_however_marked():
    """A "True" string, a first-chunk attribute or event, a stream-named operation, a completion start time."""
    base = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}
    assert facts({**base, "llm.is_streaming": "True"}).streaming is True
    assert facts({**base, "llm.is_streaming": "False"}).streaming is False
    ttft = facts({**base, "gen_ai.client.operation.time_to_first_chunk": 0.2})
    assert ttft.streaming is True and ttft.ttft_ms == 200
    vercel = facts({"ai.operationId": "ai.streamText.doStream", "ai.model.id": "m", "ai.response.msToFirstChunk": 80.5})
    assert vercel.streaming is True and vercel.ttft_ms == 80.5
    event = facts({"openinference.span.kind": "LLM", "llm.invocation_parameters": json.dumps({"stream": False})},
                  events=[(1_050_000_000, "First Token Stream Event", {})], start_time_ns=1_000_000_000,
                  end_time_ns=2_000_000_000)
    assert event.streaming is True and event.ttft_ms == 50
    late = facts({"openinference.span.kind": "LLM"}, events=[(3_000_000_000, "First Token Stream Event", {})],
                 start_time_ns=1_000_000_000, end_time_ns=2_000_000_000)
    assert late.streaming is True and late.ttft_ms is None  # a first chunk after the end is a wrong clock
    named = facts({"openinference.span.kind": "LLM"}, span_name="OpenAI.astream_chat")
    assert named.streaming is True


def test_rule3_tool_calls_from_every_shape_and_finish_reasons():
    parts = facts({"gen_ai.operation.name": "chat", "gen_ai.response.finish_reasons": ["tool_call"],
                   "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                       {"type": "tool_call", "name": "get_weather", "arguments": {"location": "Paris"}}]}])})
    assert parts.tool_names == ["get_weather"] and parts.finish_reasons == ["tool_calls"]
    flattened = {"openinference.span.kind": "LLM",
                 "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
                 "llm.output_messages.0.message.tool_calls.1.tool_call.function.name": "get_time",
                 "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"location": "Paris"}'}
    assert semconv.tool_calls(flattened) == [("get_weather", '{"location": "Paris"}'), ("get_time", "")]
    litellm = {"gen_ai.operation.name": "chat", "gen_ai.completion.0.function_call.name": "get_weather"}
    assert facts(litellm).tool_names == ["get_weather"]
    vercel = facts({"ai.operationId": "ai.generateText.doGenerate", "ai.response.finishReason": "tool-calls",
                    "ai.response.toolCalls": json.dumps([{"toolName": "get_weather", "input": "{}"}])})
    assert vercel.tool_names == ["get_weather"] and vercel.finish_reasons == ["tool_calls"]
    step = facts({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather"})
    assert step.tool_names == ["get_weather"]
    assert semconv.normalise_finish_reason("end_turn") == "stop"


def test_rule4_provider_and_model_names_normalised_raw_kept():
    vercel = facts({"ai.operationId": "ai.generateText.doGenerate", "gen_ai.system": "openai.chat",
                    "gen_ai.request.model": "gpt-4o-mini"})
    assert (vercel.provider, vercel.provider_raw) == ("openai", "openai.chat")
    routed = facts({"gen_ai.operation.name": "chat", "gen_ai.request.model": "openai/gpt-4o-mini"})
    assert (routed.provider, routed.request_model, routed.request_model_raw) == ("openai", "gpt-4o-mini",
                                                                                 "openai/gpt-4o-mini")
    hub = facts({"gen_ai.operation.name": "chat", "gen_ai.request.model": "meta-llama/Llama-3.1-8B"})
    assert hub.request_model == "meta-llama/Llama-3.1-8B" and hub.request_model_raw == ""
    output = json.dumps({"generations": [[{"type": "ChatGenerationChunk",
                                           "generation_info": {"model_name": "gpt-4o-mini-2024-07-18"}}]]})
    langchain = facts({"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "output.value": output})
    assert langchain.response_model == "gpt-4o-mini-2024-07-18" and langchain.streaming is True


def test_rule5_tokens_counted_by_the_instrumentor_are_marked():
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 9,
             "gen_ai.request.stream": True}
    assert facts(attrs, scope_name="@traceloop/instrumentation-openai").tokens_estimated is True
    assert facts(attrs, scope_name="opentelemetry.instrumentation.openai_v2").tokens_estimated is False
    assert facts({**attrs, "gen_ai.request.stream": False},
                 scope_name="@traceloop/instrumentation-openai").tokens_estimated is False


def test_rule6_mcp_spans_are_tool_steps():
    call = facts({"mcp.method.name": "tools/call", "gen_ai.tool.name": "get_weather", "mcp.session.id": "s"},
                 span_name="tools/call get_weather")
    assert (call.convention, call.operation, call.tool_names) == ("mcp", "execute_tool", ["get_weather"])
    named = facts({"mcp.method.name": "tools/call"}, span_name="tools/call get_time")
    assert named.tool_names == ["get_time"]
    session = facts({"mcp.method.name": "initialize"})
    assert session.operation == "mcp" and session.operation not in semconv.MODEL_OPERATIONS


def _span(span_id, parent, attributes, name="s"):
    return ("ab" * 16, span_id, parent, "", name, 1, 1_000, 2_000, 0, "", attributes, None, None)


def test_rule7_context_inherited_from_nearest_ancestor_then_root():
    """In one request: the call takes the nearest ancestor's session, the root's user, its own app."""
    spans = [
        _span("1" * 16, "2" * 16, {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "llmlens.app": "own"}),
        _span("2" * 16, "3" * 16, {"session.id": "near"}),
        _span("3" * 16, "", {"session.id": "root-session", "user.id": "root-user", "department": "cx"}),
    ]
    batch = normalise_spans([({"service.name": "svc"}, [("scope", "", spans)])], build_cost_model(window=None))
    (row,) = batch.rows("llm_calls")
    got = {name: row[CALL_COLUMNS.index(name)] for name in ("App", "Department", "UserId", "SessionId")}
    assert got == {"App": "own", "Department": "cx", "UserId": "root-user", "SessionId": "near"}
    parents = {"c": "p", "p": "r", "r": ""}
    assert semconv.inherited_context(parents, {"r": {"session_id": "s"}}, "c", "r") == {"session_id": "s"}


def test_rule8_event_borne_messages():
    prompt, response, calls = semconv.event_content([
        ("gen_ai.system.message", '{"content": "You are terse."}', {}),
        ("gen_ai.user.message", '{"content": "Weather?"}', {}),
        ("gen_ai.choice", json.dumps({"message": {"role": "assistant", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}}]}}), {}),
        ("gen_ai.content.completion", "", {"gen_ai.completion": "done"}),
    ])
    assert prompt == "system: You are terse.\nuser: Weather?"
    assert response == "assistant: [tool call get_weather]\ndone"
    assert calls == [("get_weather", '{"location": "Paris"}')]



def test_rule3_event_borne_tool_calls_are_the_responses_only():
    """A follow-up call's prompt repeats the earlier call's tool request: that is not this call's."""
    earlier = {"role": "assistant", "tool_calls": [{"function": {"name": "get_weather", "arguments": "{}"}}]}
    prompt, response, calls = semconv.event_content([
        ("gen_ai.user.message", '{"content": "Weather?"}', {}),
        ("gen_ai.assistant.message", json.dumps(earlier), {}),
        ("gen_ai.tool.message", '{"content": "sunny", "id": "call_1"}', {}),
        ("gen_ai.choice", json.dumps({"message": {"role": "assistant", "tool_calls": [
            {"function": {"name": "book_table"}}, {"function": {"name": "send_mail", "arguments": "{}"}}]}}), {}),
    ])
    assert prompt == "user: Weather?\nassistant: [tool call get_weather]\ntool: sunny"
    assert response == "assistant: [tool call book_table, send_mail]"
    assert calls == [("book_table", ""), ("send_mail", "{}")]
