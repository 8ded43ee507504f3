"""The demo's mock LLM, through the real openai client and plain HTTP."""

from __future__ import annotations

import base64
import struct
import urllib.request

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmlens.demo.mock_llm import MockSettings, answer_words, create_app, embedding_vector


def test_chat_answers_are_deterministic_with_usage(client):
    messages = [{"role": "user", "content": "Where is my invoice?"}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    second = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.choices[0].message.content.split() == answer_words(0, "Where is my invoice?", None)
    assert first.model == "gpt-4o-mini-2024-07-18"
    assert first.usage.prompt_tokens == 4 + 4
    assert first.usage.completion_tokens == len(first.choices[0].message.content.split())


def test_max_tokens_truncates_with_length_finish(client):
    result = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                            max_tokens=3)
    assert result.usage.completion_tokens == 3 and result.choices[0].finish_reason == "length"


def test_stream_honours_include_usage(client):
    messages = [{"role": "user", "content": "stream please"}]
    with_usage = list(client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True,
                                                     stream_options={"include_usage": True}))
    without = list(client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True))
    assert with_usage[-1].usage is not None and with_usage[-1].choices == []
    assert all(c.usage is None for c in without)
    text = "".join(c.choices[0].delta.content or "" for c in without if c.choices)
    assert text.split() == answer_words(0, "stream please", None)


def test_tool_call_when_tools_offered(client):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    result = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "weather?"}],
                                            tools=tools)
    assert result.choices[0].finish_reason == "tool_calls"
    assert result.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_embeddings_float_and_base64(mock_llm_url):
    float_body = httpx.post(f"{mock_llm_url}/embeddings", json={"model": "text-embedding-3-small", "input": "hi",
                                                                "encoding_format": "float"}).json()
    b64_body = httpx.post(f"{mock_llm_url}/embeddings", json={"model": "text-embedding-3-small", "input": "hi",
                                                              "encoding_format": "base64", "dimensions": 8}).json()
    vector = float_body["data"][0]["embedding"]
    assert len(vector) == 1536 and vector == pytest.approx(embedding_vector("hi", 1536))
    decoded = struct.unpack("<8f", base64.b64decode(b64_body["data"][0]["embedding"]))
    assert list(decoded) == pytest.approx(embedding_vector("hi", 8), rel=1e-6)


def test_injected_failures(client):
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                       extra_headers={"x-mock-status": "429"})
    assert info.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                       extra_headers={"x-mock-status": "500"})


def test_timeout_injection_makes_the_client_time_out(mock_llm_url):
    short = openai.OpenAI(base_url=mock_llm_url, api_key="k", max_retries=0, timeout=0.5)
    with pytest.raises(openai.APITimeoutError):
        short.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                      extra_headers={"x-mock-status": "timeout"})


async def test_configured_error_rate():
    app = create_app(MockSettings(ttft_ms=0, ms_per_token=0, error_rate=1.0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mock") as http:
        response = await http.post("/v1/chat/completions", json={"model": "m", "messages": []})
    assert response.status_code == 500


def test_models_and_serving_metrics(client, mock_llm_url):
    assert "gpt-4o-mini" in [m.id for m in client.models.list().data]
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "count me"}])
    text = urllib.request.urlopen(mock_llm_url.removesuffix("/v1") + "/metrics", timeout=10).read().decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"vllm:e2e_request_latency_seconds", "vllm:time_to_first_token_seconds", "vllm:generation_tokens",
            "vllm:num_requests_running", "vllm:num_requests_waiting"} <= names


def test_responses_api(client):
    response = client.responses.create(model="gpt-4o-mini", input="summarise my plan", instructions="be brief")
    assert response.output_text.split() == answer_words(0, "be brief\nsummarise my plan", None)
    assert response.usage.input_tokens == (4 + 2) + (4 + 3)
