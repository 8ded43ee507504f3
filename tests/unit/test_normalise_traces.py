"""Spans to rows: every column of otel_traces and llm_calls gets its own value (rows are built as
tuples in column order, so a value in the wrong place would show here first)."""

from __future__ import annotations

import pyarrow as pa

from llmlens.server.normalise import build_cost_model
from llmlens.server.receive.workers import build_batch
from tests.integration.otlp_requests import make_span, new_span_id, new_trace_id, trace_request


def _rows(table: pa.Table) -> list[dict]:
    def as_ns(kind: pa.DataType) -> pa.DataType:
        if kind == pa.timestamp("ns"):
            return pa.int64()
        return pa.list_(pa.int64()) if kind == pa.list_(pa.timestamp("ns")) else kind

    times = pa.schema([(f.name, as_ns(f.type)) for f in table.schema])
    return table.cast(times).to_pylist()  # times as ns integers, whatever pandas is installed


def test_span_and_call_columns_hold_their_own_values() -> None:
    trace_id, parent = new_trace_id(), new_span_id()
    span = make_span("chat gpt-4o", trace_id=trace_id, parent=parent, start_ns=1_700_000_000_000_000_000,
                     duration_ms=250, error=True, kind=3, attrs={
                         "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                         "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
                         "gen_ai.usage.input_tokens": 111, "gen_ai.usage.output_tokens": 22,
                         "gen_ai.usage.cache_read.input_tokens": 3, "gen_ai.usage.reasoning.output_tokens": 4,
                         "gen_ai.request.stream": True, "gen_ai.response.time_to_first_chunk": 0.05,
                         "gen_ai.response.finish_reasons": ["length"], "error.type": "timeout",
                         "llmlens.app": "support", "llmlens.department": "cx", "user.id": "u1", "session.id": "s1",
                         "gen_ai.input.messages": "hello", "gen_ai.output.messages": "world"})
    span.trace_state = "k=v"
    span.status.message = "boom"
    span.events.add(time_unix_nano=1_700_000_000_000_000_100, name="e1").attributes.add(key="a").value.int_value = 1
    span.links.add(trace_id=new_trace_id(), span_id=new_span_id(), trace_state="l=1")
    batch = build_batch("traces", trace_request([span], scope="my.scope").SerializeToString(), "protobuf",
                        build_cost_model(window=None))  # fixed times of 2023: no time window

    [row] = _rows(batch.arrow["otel_traces"])
    assert row["Timestamp"] == 1_700_000_000_000_000_000
    assert (row["TraceId"], row["SpanId"], row["ParentSpanId"]) == (trace_id.hex(), span.span_id.hex(), parent.hex())
    assert (row["TraceState"], row["SpanName"], row["SpanKind"], row["ServiceName"]) == (
        "k=v", "chat gpt-4o", "Client", "itest")
    assert dict(row["ResourceAttributes"]) == {"service.name": "itest"}
    assert (row["ScopeName"], row["ScopeVersion"]) == ("my.scope", "")
    assert dict(row["SpanAttributes"])["gen_ai.usage.input_tokens"] == "111"
    assert (row["Duration"], row["StatusCode"], row["StatusMessage"]) == (250_000_000, "Error", "boom")
    assert (row["Events.Timestamp"], row["Events.Name"]) == ([1_700_000_000_000_000_100], ["e1"])
    assert [dict(a) for a in row["Events.Attributes"]] == [{"a": "1"}]
    assert (row["Links.TraceId"][0], row["Links.TraceState"]) == (span.links[0].trace_id.hex(), ["l=1"])
    assert row["Links.SpanId"] == [span.links[0].span_id.hex()] and row["Links.Attributes"] == [[]]

    [call] = _rows(batch.arrow["llm_calls"])
    assert (call["Timestamp"], call["TraceId"], call["SpanId"]) == (
        1_700_000_000_000_000_000, trace_id.hex(), span.span_id.hex())
    assert (call["ServiceName"], call["SpanName"], call["Duration"], call["IsError"]) == (
        "itest", "chat gpt-4o", 250_000_000, True)
    assert (call["Convention"], call["Operation"], call["Provider"]) == ("otel", "chat", "openai")
    assert (call["RequestModel"], call["ResponseModel"]) == ("gpt-4o", "gpt-4o-2024-08-06")
    assert (call["InputTokens"], call["OutputTokens"], call["CachedInputTokens"], call["ReasoningTokens"]) == (
        111, 22, 3, 4)
    assert call["CostUsd"] > 0 and call["Priced"] is True
    assert (call["Streaming"], call["TtftMs"], call["FinishReasons"], call["ErrorType"]) == (
        True, 50.0, ["length"], "timeout")
    assert (call["App"], call["Department"], call["UserId"], call["SessionId"]) == ("support", "cx", "u1", "s1")
    assert (call["Input"], call["Output"]) == ("", "")  # the text is stored once, in the span
    assert dict(row["SpanAttributes"])["gen_ai.input.messages"] == "hello"
