"""The /metrics contract: names and labels exactly as the issue lists them, overflow, thread safety,
OpenMetrics that prometheus_client's own parser reads (with exemplars), and text that promtool accepts."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as text_families

from llmlens.server.metrics import derive
from llmlens.server.metrics import families as f
from llmlens.server.metrics.deltas import BatchMetrics, HistogramDelta
from llmlens.server.metrics.exposition import registry_families, render, scalar_families
from llmlens.server.metrics.registry import Registry
from llmlens.server.normalise import build_cost_model
from llmlens.server.receive.workers import build_batch
from tests.integration.otlp_requests import llm_attrs, make_span, new_span_id, new_trace_id, trace_request

OPENMETRICS = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75," \
              "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"  # what Prometheus 2.42 sends

# The issue's contract: family -> its labels (dashboards, rules and Grafana's service graph read these).
CONTRACT = {
    "gen_ai_client_operation_duration_seconds": {"gen_ai_operation_name", "gen_ai_provider_name",
                                                 "gen_ai_request_model", "gen_ai_response_model", "error_type",
                                                 "server_address", "service_name"},
    "gen_ai_client_token_usage": {"gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model",
                                  "gen_ai_response_model", "error_type", "server_address", "service_name",
                                  "gen_ai_token_type"},
    "gen_ai_client_operation_time_to_first_chunk_seconds": {"gen_ai_operation_name", "gen_ai_provider_name",
                                                            "gen_ai_request_model", "gen_ai_response_model",
                                                            "error_type", "server_address", "service_name"},
    "llm_requests_total": {"model", "status", "app"},
    "llm_request_duration_seconds": {"model"},
    "llm_time_to_first_token_seconds": {"model"},
    "llm_tokens_total": {"model", "direction", "app"},
    "llm_cost_dollars_total": {"model", "department", "app"},
    "llm_unpriced_requests_total": {"model"},
    "llm_errors_total": {"model", "error_type"},
    "llm_quality_score": {"app", "name"},
    "traces_spanmetrics_calls_total": {"service", "span_name", "span_kind", "status_code"},
    "traces_spanmetrics_latency": {"service", "span_name", "span_kind", "status_code"},
    "traces_service_graph_request_total": {"client", "server", "connection_type"},
    "traces_service_graph_request_failed_total": {"client", "server", "connection_type"},
    "traces_service_graph_request_server_seconds": {"client", "server", "connection_type"},
    "traces_service_graph_request_client_seconds": {"client", "server", "connection_type"},
    "traces_service_graph_unpaired_spans_total": {"client", "server"},
}
NEVER_LABELS = {"user", "user_id", "session", "session_id", "trace_id", "span_id"}


def a_registry(max_series: int = 1000) -> Registry:
    """Every family with a series: LLM calls (streamed, failed, priced), spans of each kind, edges."""
    registry = Registry(f.REGISTERED, max_series=max_series)
    now, trace_id, client_id = time.time_ns(), new_trace_id(), new_span_id()
    attrs = {**llm_attrs("gpt-4o-mini", 100, 20), "gen_ai.response.time_to_first_chunk": 0.2,
             "server.address": "api.openai.com", "user.id": "u-1", "session.id": "s-1"}
    spans = [make_span("chat", trace_id=trace_id, span_id=client_id, start_ns=now, duration_ms=800, attrs=attrs,
                       kind=Span.SPAN_KIND_CLIENT),
             make_span("chat", trace_id=trace_id, start_ns=now, error=True, kind=Span.SPAN_KIND_CLIENT,
                       attrs={**llm_attrs("no-such-model-x1", 0, 0), "error.type": "timeout"}),
             make_span("POST /v1/chat", trace_id=trace_id, parent=client_id, start_ns=now, kind=Span.SPAN_KIND_SERVER),
             make_span("GET /", trace_id=new_trace_id(), start_ns=now, kind=Span.SPAN_KIND_SERVER),
             make_span("SELECT", trace_id=trace_id, start_ns=now, kind=Span.SPAN_KIND_CLIENT, error=True,
                       attrs={"db.system": "pg"})]
    body = trace_request(spans, service="support-bot", resource={"llmlens.app": "support"}).SerializeToString()
    delta: BatchMetrics = build_batch("traces", body, "protobuf", build_cost_model(window=None),
                                      (derive.derive,)).derived[derive.NAME]
    registry.merge(delta)
    registry.add(f.EDGE_UNPAIRED, ("support-bot", ""), 1.0)
    registry.merge(BatchMetrics(latest={f.LLM_QUALITY.name: {("support", "relevance"): (now, 0.8)}}))
    registry.merge(BatchMetrics(counters={f.LLM_UNPRICED.name: {("no-such-model-x1",): 1.0}}))
    return registry


def exposed(registry: Registry, accept: str | None = None) -> tuple[str, str]:
    body, content_type = render(list(registry_families(registry.snapshot())), accept)
    return body.decode(), content_type


def test_every_family_of_the_issue_is_exposed_with_exactly_its_labels():
    text, content_type = exposed(a_registry())
    assert content_type.startswith("text/plain; version=0.0.4")
    found = {family.name: family for family in text_families(text)}
    for name, labels in CONTRACT.items():
        base = name.removesuffix("_total")
        family = found[base]
        assert family.samples, f"{name} has no series"
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample.labels)
            assert not NEVER_LABELS & set(sample.labels)
    spans = found["traces_spanmetrics_calls"].samples
    assert {s.labels["span_kind"] for s in spans} == {"SPAN_KIND_CLIENT", "SPAN_KIND_SERVER"}
    assert {s.labels["status_code"] for s in spans} == {"STATUS_CODE_UNSET", "STATUS_CODE_ERROR"}
    le = [s.labels["le"] for s in found["traces_spanmetrics_latency"].samples if s.name.endswith("_bucket")][:15]
    assert le == ["0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128", "0.256", "0.512", "1.024",
                  "2.048", "4.096", "8.192", "16.384", "+Inf"]


def test_openmetrics_parses_and_carries_exemplars_with_trace_ids():
    registry = a_registry()
    text, content_type = exposed(registry, OPENMETRICS)
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert text.endswith("# EOF\n")
    families = {family.name: family for family in text_string_to_metric_families(text)}
    exemplars = [s.exemplar for s in families["gen_ai_client_operation_duration_seconds"].samples if s.exemplar]
    assert exemplars and all(len(e.labels["trace_id"]) == 32 and len(e.labels["span_id"]) == 16 for e in exemplars)
    for family in families.values():  # each exemplar's value lies in its bucket (OpenMetrics requires it)
        previous = float("-inf")
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                upper = float(sample.labels["le"])
                if sample.exemplar:
                    assert previous < sample.exemplar.value <= upper, (family.name, sample)
                previous = upper if upper != float("inf") else float("-inf")
    assert any(s.exemplar for s in families["traces_spanmetrics_latency"].samples)
    assert any(s.exemplar for s in families["llm_request_duration_seconds"].samples)
    # Exemplars exist only in OpenMetrics: the text format has none.
    assert " # {" not in exposed(registry)[0]


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool (Debian package prometheus, installed by `make test`) is not on PATH")
def test_promtool_accepts_the_text_format():
    registry = a_registry()
    text = render([*registry_families(registry.snapshot()),
                   *scalar_families({f.WRITE_QUEUE: 3.0, f.COMMITS: 7.0, f.STORE_BYTES: 1e6})], None)[0]
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_a_full_family_files_new_label_sets_under_overflow_and_counts_them():
    registry = Registry(f.REGISTERED, max_series=10)
    for i in range(25):
        registry.add(f.LLM_REQUESTS, (f"model-{i}", "ok", "app"), 2.0)
    registry.add(f.LLM_REQUESTS, ("model-3", "ok", "app"), 1.0)  # a known label set still counts as itself
    registry.merge_histograms(f.LLM_DURATION, {(f"m{i}",): HistogramDelta([1] * 17, 1.0) for i in range(12)})
    snapshot = {s.family.name: dict(s.series) for s in registry.snapshot()}
    requests = snapshot[f.LLM_REQUESTS.name]
    assert len(requests) == 11
    assert requests[("__overflow__",) * 3] == 30.0 and requests[("model-3", "ok", "app")] == 3.0
    assert snapshot[f.LLM_DURATION.name][("__overflow__",)].count == 2 * 17
    assert snapshot[f.OVERFLOWED.name] == {(f.LLM_REQUESTS.name,): 15.0, (f.LLM_DURATION.name,): 34.0}
    text = exposed(registry)[0]
    assert 'llmlens_metrics_overflow_total{family="llm_requests_total"} 15.0' in text


def test_merges_and_scrapes_from_many_threads_lose_nothing():
    registry = Registry(f.REGISTERED, max_series=1000)
    delta = BatchMetrics(counters={f.SPAN_CALLS.name: {("s", "n", "SPAN_KIND_SERVER", "STATUS_CODE_OK"): 1.0}},
                         histograms={f.SPAN_LATENCY.name: {("s", "n", "SPAN_KIND_SERVER", "STATUS_CODE_OK"):
                                                           HistogramDelta([1] + [0] * 14, 0.001)}})
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            render(list(registry_families(registry.snapshot())), OPENMETRICS)

    def write() -> None:
        for _ in range(2000):
            registry.merge(delta)

    readers = [threading.Thread(target=scrape) for _ in range(2)]
    writers = [threading.Thread(target=write) for _ in range(4)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    snapshot = {s.family.name: dict(s.series) for s in registry.snapshot()}
    labels = ("s", "n", "SPAN_KIND_SERVER", "STATUS_CODE_OK")
    assert snapshot[f.SPAN_CALLS.name][labels] == 8000.0
    assert snapshot[f.SPAN_LATENCY.name][labels].count == 8000


def test_a_gauge_shows_the_newest_value_whatever_the_commit_order():
    registry = Registry(f.REGISTERED, max_series=100)
    for at, value in ((20, 0.9), (10, 0.1), (30, 0.5), (25, 0.7)):
        registry.merge(BatchMetrics(latest={f.LLM_QUALITY.name: {("app", "relevance"): (at, value)}}))
    assert dict(next(s.series for s in registry.snapshot() if s.family is f.LLM_QUALITY)) == {("app", "relevance"): 0.5}
