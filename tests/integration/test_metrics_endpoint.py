"""/metrics and /metrics/otlp on a real `llmlens serve` behind an API key: real instrumentors' exports
(the corpus) and hand-made spans over OTLP/HTTP, scraped as Prometheus scrapes, parsed with
prometheus_client's parsers and checked by promtool."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import CORPUS
from tests.integration.otlp_requests import (
    PROTOBUF,
    llm_attrs,
    make_span,
    new_span_id,
    new_trace_id,
    post,
    trace_request,
)
from tests.server_process import ServerProcess

API_KEY = "metrics-endpoint-key-0c5f2e"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("metrics") / "data", env={"LLMLENS_API_KEY": API_KEY},
                            extra_args=["--metrics-edge-wait-s", "1"]).start()
    yield process
    if process.proc and process.proc.poll() is None:
        process.terminate()


def scrape(server: ServerProcess, path: str = "/metrics") -> dict[str, dict[tuple, float]]:
    response = httpx.get(server.url + path, headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def total(metrics: dict, name: str, **labels: str) -> float:
    return sum(v for k, v in metrics.get(name, {}).items() if set(labels.items()) <= set(k))


def send(server: ServerProcess, body) -> None:
    response = post(server.url, "traces", body, headers=AUTH)
    assert response.status_code == 200, response.text


def poll(what: str, check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            assert found, f"no {what} within {timeout} s"
            return found
        time.sleep(0.25)


def test_metrics_are_behind_the_api_key(server: ServerProcess):
    for path in ("/metrics", "/metrics/otlp"):
        denied = httpx.get(server.url + path, timeout=30)
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"
        assert httpx.get(server.url + path, headers=AUTH, timeout=30).status_code == 200


def test_corpus_calls_count_once_in_every_family(server: ServerProcess):
    """The openai-v2 instrumentation's chat, stream and error captures and OpenLIT's stream, each sent
    twice (an exporter retrying after a timeout): every family counts each call once."""
    for instrumentor, case in (("otel", "chat"), ("otel", "stream"), ("otel", "error"), ("openlit", "stream")):
        body = (CORPUS / instrumentor / f"{case}.traces.pb").read_bytes()
        for _ in range(2):
            response = httpx.post(server.url + "/v1/traces", content=body, timeout=60,
                                  headers={"content-type": PROTOBUF, **AUTH})
            assert response.status_code == 200, response.text
    metrics = scrape(server)
    service = {"service_name": "bench-otel"}
    assert total(metrics, "gen_ai_client_operation_duration_seconds_count", **service) == 3
    assert total(metrics, "gen_ai_client_operation_duration_seconds_count", error_type="RateLimitError", **service) == 1
    # openai-v2 records no time to first chunk on its spans; OpenLIT does.
    assert total(metrics, "gen_ai_client_operation_time_to_first_chunk_seconds_count", **service) == 0
    assert total(metrics, "gen_ai_client_operation_time_to_first_chunk_seconds_count", service_name="bench-openlit") == 1
    assert total(metrics, "llm_time_to_first_token_seconds_count", model="gpt-4o-mini") == 1
    assert total(metrics, "gen_ai_client_token_usage_sum", gen_ai_token_type="input", **service) == 60  # 30 + 30
    assert total(metrics, "llm_requests_total", model="gpt-4o-mini", status="ok") == 3
    assert total(metrics, "llm_errors_total", model="gpt-4o-mini", error_type="RateLimitError") == 1
    assert total(metrics, "traces_spanmetrics_calls_total", service="bench-otel") == 3
    assert total(metrics, "traces_spanmetrics_calls_total", service="bench-otel",
                 status_code="STATUS_CODE_ERROR", span_kind="SPAN_KIND_CLIENT") == 1


def test_a_call_between_two_services_sent_apart_is_one_edge(server: ServerProcess):
    """The client span and its server child in two requests, server first: one edge; an LLM call
    nobody answered becomes an edge to its provider once it has waited (1 s here)."""
    trace_id, client_id = new_trace_id(), new_span_id()
    send(server, trace_request([make_span("GET /search", trace_id=trace_id, parent=client_id,
                                          kind=Span.SPAN_KIND_SERVER, duration_ms=30)], service="itest-retriever"))
    send(server, trace_request([make_span("GET /search", trace_id=trace_id, span_id=client_id,
                                          kind=Span.SPAN_KIND_CLIENT, duration_ms=40)], service="itest-chatbot"))
    send(server, trace_request([make_span("chat", kind=Span.SPAN_KIND_CLIENT, duration_ms=500,
                                          attrs={**llm_attrs("itest-edge-model", 3, 2), "gen_ai.provider.name": "openai"})],
                               service="itest-chatbot"))

    def edges() -> dict | None:
        metrics = scrape(server)
        found = {dict(k)["server"]: v for k, v in metrics.get("traces_service_graph_request_total", {}).items()
                 if dict(k)["client"] == "itest-chatbot"}
        return metrics if {"itest-retriever", "openai"} <= set(found) else None

    metrics = poll("edges from itest-chatbot", edges)
    assert total(metrics, "traces_service_graph_request_total", client="itest-chatbot", server="itest-retriever",
                 connection_type="") == 1
    assert total(metrics, "traces_service_graph_request_total", client="itest-chatbot", server="openai",
                 connection_type="virtual_node") == 1
    assert total(metrics, "traces_service_graph_request_server_seconds_sum", server="itest-retriever") == \
        pytest.approx(0.03)
    assert total(metrics, "traces_service_graph_unpaired_spans_total", client="itest-chatbot") == 1


def test_openmetrics_has_exemplars_of_stored_traces(server: ServerProcess):
    trace_id = new_trace_id()
    send(server, trace_request([make_span("chat", trace_id=trace_id, duration_ms=250,
                                          attrs=llm_attrs("itest-exemplar-model", 5, 5))], service="itest-exemplars"))
    response = httpx.get(server.url + "/metrics", headers={**AUTH, "Accept": OPENMETRICS}, timeout=30)
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    families = {f.name: f for f in openmetrics_families(response.text)}
    exemplars = [s.exemplar for s in families["gen_ai_client_operation_duration_seconds"].samples
                 if s.exemplar and s.labels.get("gen_ai_request_model") == "itest-exemplar-model"]
    assert [e.labels["trace_id"] for e in exemplars] == [trace_id.hex()]
    stored = httpx.get(f"{server.url}/api/v1/traces/{trace_id.hex()}", headers=AUTH, timeout=30)
    assert stored.status_code == 200 and stored.json()["spans"]


def test_otlp_metrics_are_re_exposed_with_prometheus_names(server: ServerProcess):
    for path in sorted((CORPUS / "traceloop").glob("*.metrics.pb")):
        response = httpx.post(server.url + "/v1/metrics", content=path.read_bytes(), timeout=60,
                              headers={"content-type": PROTOBUF, **AUTH})
        assert response.status_code == 200, response.text
    metrics = scrape(server, "/metrics/otlp")
    assert total(metrics, "gen_ai_client_operation_duration_seconds_count") > 0
    assert total(metrics, "gen_ai_client_token_usage_count") > 0
    assert any(dict(k).get("job") for k in metrics["gen_ai_client_token_usage_count"])
    assert total(scrape(server), "llmlens_points_accepted_total") > 0


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool (Debian package prometheus, installed by `make test`) is not on PATH")
def test_promtool_accepts_the_served_text(server: ServerProcess):
    send(server, trace_request([make_span("work", duration_ms=5)], service="itest-promtool"))
    text = httpx.get(server.url + "/metrics", headers=AUTH, timeout=30).text
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
