"""The real openai client over HTTP against the mock LLM; spans decoded by a real OTLP receiver."""

from __future__ import annotations

import json

import openai
import pytest

import llmlens
from llmlens.demo.mock_llm import answer_words

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "How do refunds work?"}]


def _one_span(receiver, prefix):
    llmlens.shutdown()  # flushes
    spans = receiver.spans_named(prefix)
    assert len(spans) == 1, [s.name for s in receiver.spans]
    return spans[0]


def test_chat_span_follows_genai_conventions(sdk, receiver, client):
    sdk(app="support", department="cx")
    result = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0.2, max_tokens=64)
    span = _one_span(receiver, "chat gpt-4o-mini")
    a = span.attributes
    assert span.kind == 3  # CLIENT
    assert span.scope == "llmlens"
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.max_tokens"] == 64
    assert a["gen_ai.usage.input_tokens"] == result.usage.prompt_tokens == 4 + 3 + 4 + 4
    assert a["gen_ai.usage.output_tokens"] == result.usage.completion_tokens
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gen_ai.response.id"] == result.id
    assert a["server.address"] == "127.0.0.1"
    assert a["llmlens.cost_usd"] > 0
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a  # capture is off by default
    assert span.resource["service.name"] == "sdk-test"
    assert span.resource["llmlens.app"] == "support"
    assert span.resource["llmlens.department"] == "cx"


def test_stream_with_usage_has_ttft_tokens_and_throughput(sdk, receiver, client):
    sdk()
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    span = _one_span(receiver, "chat gpt-4o-mini")
    a = span.attributes
    assert a["gen_ai.request.stream"] is True
    assert a["gen_ai.usage.output_tokens"] == len(text.split()) == chunks[-1].usage.completion_tokens
    assert a["gen_ai.usage.input_tokens"] == chunks[-1].usage.prompt_tokens
    assert a["gen_ai.response.time_to_first_chunk"] >= 0.005  # the mock waits 5 ms before its first chunk
    assert a["llmlens.output_tokens_per_second"] > 0
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert "llmlens.usage.estimated" not in a


def test_stream_without_usage_estimates_output_tokens(sdk, receiver, client):
    sdk()
    with client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as stream:
        words = sum(1 for c in stream if c.choices and c.choices[0].delta.content)
    a = _one_span(receiver, "chat gpt-4o-mini").attributes
    assert a["llmlens.usage.estimated"] is True
    assert a["gen_ai.usage.output_tokens"] == words
    assert "gen_ai.response.time_to_first_chunk" in a


async def test_async_chat_and_async_stream(sdk, receiver, async_client):
    sdk()
    await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    stream = await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                        stream_options={"include_usage": True})
    async for _ in stream:
        pass
    llmlens.shutdown()
    spans = receiver.spans_named("chat gpt-4o-mini")
    assert len(spans) == 2
    streamed = [s for s in spans if s.attributes.get("gen_ai.request.stream")]
    assert len(streamed) == 1 and streamed[0].attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert all(s.attributes["gen_ai.usage.output_tokens"] > 0 for s in spans)


def test_embeddings_span(sdk, receiver, client):
    sdk()
    result = client.embeddings.create(model="text-embedding-3-small", input=["one two three", "four"])
    a = _one_span(receiver, "embeddings text-embedding-3-small").attributes
    assert a["gen_ai.operation.name"] == "embeddings"
    assert a["gen_ai.usage.input_tokens"] == result.usage.prompt_tokens == 4
    assert a["gen_ai.embeddings.dimension.count"] == 1536
    assert "gen_ai.usage.output_tokens" not in a


def test_responses_api_plain_and_streamed(sdk, receiver, client):
    sdk()
    response = client.responses.create(model="gpt-4o-mini", input="Tell me about refunds")
    with client.responses.create(model="gpt-4o-mini", input="Tell me about refunds", stream=True) as stream:
        for _ in stream:
            pass
    llmlens.shutdown()
    spans = receiver.spans_named("chat gpt-4o-mini")
    assert len(spans) == 2
    for span in spans:
        a = span.attributes
        assert a["openai.api"] == "responses"
        assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
        assert a["gen_ai.usage.output_tokens"] == response.usage.output_tokens
        assert a["gen_ai.usage.input_tokens"] == response.usage.input_tokens
    assert sum("gen_ai.response.time_to_first_chunk" in s.attributes for s in spans) == 1


def test_rate_limited_call_is_an_error_span(sdk, receiver, client):
    sdk()
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-mock-status": "429"})
    span = _one_span(receiver, "chat gpt-4o-mini")
    assert span.status_code == 2  # ERROR
    assert span.attributes["error.type"] == "RateLimitError"
    assert span.attributes["http.response.status_code"] == 429
    assert any(name == "exception" for name, _ in span.events)


def test_reasoning_and_cached_tokens(sdk, receiver, client):
    sdk()
    client.chat.completions.create(model="o4-mini", messages=MESSAGES, extra_headers={"x-mock-cached-tokens": "6"})
    a = _one_span(receiver, "chat o4-mini").attributes
    assert a["gen_ai.usage.cache_read.input_tokens"] == 6
    assert a["gen_ai.usage.reasoning.output_tokens"] == a["gen_ai.usage.output_tokens"] // 2 > 0


def test_content_capture_masks_pii(sdk, receiver, client):
    sdk(capture_content=True)
    messages = [{"role": "user", "content": "Refund me at jane.doe@example.com, card 4111 1111 1111 1111"}]
    result = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    a = _one_span(receiver, "chat gpt-4o-mini").attributes
    sent = json.loads(a["gen_ai.input.messages"])
    content = sent[0]["parts"][0]["content"]
    assert "jane.doe@example.com" not in content and "<EMAIL>" in content and "<CREDIT_CARD>" in content
    answer = json.loads(a["gen_ai.output.messages"])[0]["parts"][0]["content"]
    assert answer == result.choices[0].message.content
    assert answer.split() == answer_words(0, messages[0]["content"], None)


def test_content_capture_without_masking_keeps_text(sdk, receiver, client):
    sdk(capture_content=True, mask_pii=False)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "mail a@b.example.com"}])
    a = _one_span(receiver, "chat gpt-4o-mini").attributes
    assert "a@b.example.com" in a["gen_ai.input.messages"]


def test_calls_before_init_are_untouched(receiver, client):
    result = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert result.choices[0].message.content
    assert receiver.spans == []


def test_stream_abandoned_early_still_ends_its_span(sdk, receiver, client):
    sdk()
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    for _ in stream:
        break
    stream.close()
    span = _one_span(receiver, "chat gpt-4o-mini")
    assert span.status_code != 2  # stopping early is not an error
    assert "gen_ai.response.time_to_first_chunk" in span.attributes


def test_request_carries_the_llm_spans_trace_context_but_no_baggage(sdk, receiver, mock_llm_url):
    """A provider that traces itself joins the trace under the LLM span; user ids in baggage stay home."""
    import httpx

    sent: list[httpx.Headers] = []
    http = httpx.Client(event_hooks={"request": [lambda request: sent.append(request.headers)]})
    client = openai.OpenAI(base_url=mock_llm_url, api_key="test-key", max_retries=0, http_client=http)
    sdk()
    with llmlens.context(user_id="alice@example.com"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-caller": "kept"})
    span = _one_span(receiver, "chat gpt-4o-mini")
    version, trace_id, parent_id, flags = sent[0]["traceparent"].split("-")
    assert (version, trace_id, parent_id) == ("00", span.trace_id, span.span_id)
    assert int(flags, 16) & 1  # sampled
    assert sent[0]["x-caller"] == "kept"
    assert "baggage" not in sent[0]


def test_a_gateway_model_id_names_the_provider(sdk, receiver, client):
    # An OpenAI-compatible gateway serving Anthropic: the openai client, a `provider/model` id.
    sdk()
    client.chat.completions.create(model="anthropic/claude-haiku-4-5", messages=MESSAGES)
    client.chat.completions.create(model="meta-llama/Llama-3.1-8B", messages=MESSAGES)
    gateway = _one_span(receiver, "chat anthropic/").attributes
    assert gateway["gen_ai.provider.name"] == "anthropic"
    assert gateway["llmlens.cost_usd"] > 0  # priced at Anthropic's list price
    plain = receiver.spans_named("chat meta-llama/")[0].attributes
    assert plain["gen_ai.provider.name"] == "openai"  # an organisation, not a provider
