"""Prometheus exposition (parsed with prometheus_client's parser) and OTLP GenAI metrics."""

from __future__ import annotations

import urllib.request

import openai
import pytest
from opentelemetry import trace
from prometheus_client.parser import text_string_to_metric_families

import llmlens
from tests.sdk.conftest import free_port

MESSAGES = [{"role": "user", "content": "What does the premium plan cost?"}]


def _samples(text: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def _value(samples, name, **labels):
    matching = [s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(matching)


def _scrape(port: int) -> dict[str, list]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return _samples(response.read().decode())


def test_prometheus_metrics_served_by_start_metrics_server(sdk, client):
    app = "metrics-app-1"  # series are process-wide: a label of this test's own
    sdk(app=app, department="finance")
    port = free_port()
    llmlens.start_metrics_server(port)
    results = [client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES) for _ in range(2)]
    list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                        stream_options={"include_usage": True}))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-mock-status": "500"})
    s = _scrape(port)
    assert _value(s, "llm_requests_total", model="gpt-4o-mini", status="ok", app=app) == 3
    assert _value(s, "llm_requests_total", model="gpt-4o-mini", status="error", app=app) == 1
    assert _value(s, "llm_errors_total", model="gpt-4o-mini", error_type="InternalServerError") >= 1
    expected_input = sum(r.usage.prompt_tokens for r in results) + results[0].usage.prompt_tokens
    assert _value(s, "llm_tokens_total", model="gpt-4o-mini", direction="input", app=app) == expected_input
    assert _value(s, "llm_tokens_total", model="gpt-4o-mini", direction="output", app=app) > 0
    assert _value(s, "llm_cost_dollars_total", model="gpt-4o-mini", department="finance", app=app) > 0
    assert _value(s, "llm_request_duration_seconds_count", model="gpt-4o-mini") >= 4
    buckets = {b.labels["le"] for b in s["llm_request_duration_seconds_bucket"]}
    assert "327.68" in buckets and "+Inf" in buckets  # LLM-sized buckets, up to minutes
    assert _value(s, "llm_time_to_first_token_seconds_count", model="gpt-4o-mini") >= 1


async def test_metrics_asgi_app_serves_exposition(sdk, client):
    import httpx

    sdk(app="metrics-app-2")
    client.embeddings.create(model="text-embedding-3-small", input="hello")
    transport = httpx.ASGITransport(app=llmlens.metrics_asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/metrics")
    s = _samples(response.text)
    assert _value(s, "llm_requests_total", model="text-embedding-3-small", status="ok", app="metrics-app-2") == 1


def test_metric_names_follow_prometheus_conventions(sdk, client):
    sdk(app="metrics-app-3")
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    port = free_port()
    llmlens.start_metrics_server(port)
    names = {family.name: family.type for family in text_string_to_metric_families(
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode())}
    assert names["llm_requests"] == "counter"
    assert names["llm_cost_dollars"] == "counter"
    assert names["llm_request_duration_seconds"] == "histogram"
    assert names["llm_quality_score"] == "gauge"


def test_otlp_genai_metrics_exported_on_shutdown(sdk, receiver, client):
    sdk(app="metrics-app-4")
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    llmlens.shutdown()
    names = {name: (unit, points) for name, unit, points in receiver.metrics}
    unit, points = names["gen_ai.client.operation.duration"]
    assert unit == "s"
    ours = [p for p in points if any(kv.key == "llmlens.app" and kv.value.string_value == "metrics-app-4"
                                      for kv in p.attributes)]
    assert ours and ours[0].count == 1
    keys = {kv.key: kv.value.string_value for kv in ours[0].attributes}
    assert keys["gen_ai.operation.name"] == "chat" and keys["gen_ai.request.model"] == "gpt-4o-mini"
    assert names["gen_ai.client.token.usage"][0] == "{token}"
    assert "llmlens.client.cost" in names


def test_sampled_out_calls_still_count(sdk, receiver, client):
    app = "metrics-app-5"
    sdk(app=app, sample_ratio=0.0)
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    port = free_port()
    llmlens.start_metrics_server(port)
    s = _scrape(port)
    llmlens.shutdown()
    assert receiver.spans_named("chat") == []  # nothing exported...
    assert _value(s, "llm_requests_total", model="gpt-4o-mini", status="ok", app=app) == 3  # ...all counted


def test_processor_derives_metrics_and_cost_from_other_instrumentors(sdk, receiver):
    """A span written the way opentelemetry-instrumentation-openai-v2 writes it (scope and attributes)."""
    app = "metrics-app-6"
    sdk(app=app, instrument_openai=False)
    tracer = trace.get_tracer("opentelemetry.instrumentation.openai_v2", "2.4b0")
    with tracer.start_as_current_span("chat gpt-4o-mini", kind=trace.SpanKind.CLIENT) as span:
        span.set_attributes({
            "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 500, "server.address": "api.openai.com",
        })
    port = free_port()
    llmlens.start_metrics_server(port)
    s = _scrape(port)
    assert _value(s, "llm_requests_total", model="gpt-4o-mini", status="ok", app=app) == 1
    assert _value(s, "llm_tokens_total", model="gpt-4o-mini", direction="output", app=app) == 500
    # gpt-4o-mini: $0.15 / 1M input, $0.60 / 1M output
    assert _value(s, "llm_cost_dollars_total", model="gpt-4o-mini", app=app) == pytest.approx(0.00045)


def test_unpriced_calls_are_counted_per_model(sdk, client):
    sdk(app="metrics-app-7")
    unpriced_model = "in-house-finetune-unpriced-7"  # the mock answers any model; the price list knows none such
    for _ in range(2):
        client.chat.completions.create(model=unpriced_model, messages=MESSAGES)
    list(client.chat.completions.create(model=unpriced_model, messages=MESSAGES, stream=True,
                                        stream_options={"include_usage": True}))
    with pytest.raises(openai.RateLimitError):  # a failed call is never priced: not "unpriced" either
        client.chat.completions.create(model=unpriced_model, messages=MESSAGES,
                                       extra_headers={"x-mock-status": "429"})
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # priced
    port = free_port()
    llmlens.start_metrics_server(port)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    s = _samples(text)
    assert _value(s, "llm_unpriced_requests_total", model=unpriced_model) == 3
    assert _value(s, "llm_requests_total", model=unpriced_model, app="metrics-app-7") == 4
    assert _value(s, "llm_cost_dollars_total", model=unpriced_model) == 0
    assert not [x for x in s["llm_unpriced_requests_total"] if x.labels["model"] == "gpt-4o-mini"]
    types = {family.name: family.type for family in text_string_to_metric_families(text)}
    assert types["llm_unpriced_requests"] == "counter"


def test_unpriced_spans_of_other_instrumentors_are_counted(sdk):
    sdk(app="metrics-app-8", instrument_openai=False)
    tracer = trace.get_tracer("opentelemetry.instrumentation.openai_v2", "2.4b0")
    with tracer.start_as_current_span("chat local-llama-unpriced-8", kind=trace.SpanKind.CLIENT) as span:
        span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
                             "gen_ai.request.model": "local-llama-unpriced-8", "gen_ai.usage.input_tokens": 10,
                             "gen_ai.usage.output_tokens": 5})
    port = free_port()
    llmlens.start_metrics_server(port)
    assert _value(_scrape(port), "llm_unpriced_requests_total", model="local-llama-unpriced-8") == 1


def test_exporting_metrics_makes_no_spans(sdk, receiver, client):
    # The exporter's own HTTP requests are not the app's work: no "POST" root span per export.
    sdk(metrics_export_interval_ms=100)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert receiver.wait_for(lambda r: len(r.metrics) > 0 and r.requests.count("/v1/metrics") >= 2)
    llmlens.shutdown()
    assert [s.name for s in receiver.spans if s.attributes.get("http.url", "").endswith("/v1/metrics")] == []
    assert [s.name for s in receiver.spans] == ["chat gpt-4o-mini"]
