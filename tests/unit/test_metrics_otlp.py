"""/metrics/otlp: OTLP metrics re-exposed as the OTel Collector's Prometheus exporter does (names and
labels translated, deltas added up, stale series dropped), from the corpus's real metric exports."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2
from prometheus_client.parser import text_string_to_metric_families

from llmlens.server.metrics import otlp_series
from llmlens.server.metrics.exposition import otlp_families, render
from llmlens.server.metrics.otlp_names import label_name, metric_name
from llmlens.server.metrics.otlp_series import OtlpMetrics
from llmlens.server.normalise import build_cost_model
from llmlens.server.receive.workers import build_batch
from tests.conftest import CORPUS
from tests.integration.otlp_requests import key_values

CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA


@pytest.mark.parametrize(("name", "unit", "kind", "expected"), [
    ("gen_ai.client.operation.duration", "s", "histogram", "gen_ai_client_operation_duration_seconds"),
    ("gen_ai.client.token.usage", "{token}", "histogram", "gen_ai_client_token_usage"),
    ("http.server.request.duration", "s", "histogram", "http_server_request_duration_seconds"),
    ("system.memory.usage", "By", "gauge", "system_memory_usage_bytes"),
    ("process.cpu.utilization", "1", "gauge", "process_cpu_utilization_ratio"),
    ("requests", "1", "counter", "requests_total"),
    ("http.requests.total", "{request}", "counter", "http_requests_total"),
    ("vehicle.speed", "m/s", "gauge", "vehicle_speed_meters_per_second"),
    ("latency_seconds", "s", "histogram", "latency_seconds"),
    ("queue-depth", "", "gauge", "queue_depth"),
    ("2xx.responses", "", "counter", "_2xx_responses_total"),
    ("llmlens.client.cost", "USD", "counter", "llmlens_client_cost_USD_total"),
])
def test_metric_names_are_translated_as_the_collector_does(name: str, unit: str, kind: str, expected: str):
    assert metric_name(name, unit, monotonic_sum=kind == "counter", gauge=kind == "gauge") == expected


@pytest.mark.parametrize(("attribute", "expected"), [
    ("gen_ai.operation.name", "gen_ai_operation_name"), ("http.response.status_code", "http_response_status_code"),
    ("k8s-pod", "k8s_pod"), ("1st", "key_1st"), ("_private", "key_private"), ("__reserved", "__reserved"),
])
def test_attribute_names_are_escaped(attribute: str, expected: str):
    assert label_name(attribute) == expected


def points_of(request: ExportMetricsServiceRequest) -> otlp_series.OtlpPoints:
    batch = build_batch("metrics", request.SerializeToString(), "protobuf", build_cost_model(window=None),
                        (otlp_series.derive,))
    return batch.derived[otlp_series.NAME]


def a_request(*metrics: metrics_pb2.Metric, resource: dict | None = None) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.extend(key_values({"service.name": "bot", "service.namespace": "llm",
                                              "service.instance.id": "bot-1", **(resource or {})}))
    sm = rm.scope_metrics.add()
    sm.scope.name, sm.scope.version = "app.metrics", "1.2"
    sm.metrics.extend(metrics)
    return request


def a_sum(name: str, value: float, *, temporality: int, monotonic: bool = True, time_ns: int,
          attrs: dict | None = None, unit: str = "") -> metrics_pb2.Metric:
    metric = metrics_pb2.Metric(name=name, unit=unit, description=f"{name} help")
    metric.sum.aggregation_temporality = temporality
    metric.sum.is_monotonic = monotonic
    metric.sum.data_points.add(as_double=value, time_unix_nano=time_ns, start_time_unix_nano=1,
                               attributes=key_values(attrs or {"route": "/chat"}))
    return metric


def a_histogram(name: str, counts: list[int], *, temporality: int, time_ns: int) -> metrics_pb2.Metric:
    metric = metrics_pb2.Metric(name=name, unit="s")
    metric.histogram.aggregation_temporality = temporality
    metric.histogram.data_points.add(count=sum(counts), sum=1.5, bucket_counts=counts, explicit_bounds=[0.1, 1.0],
                                     time_unix_nano=time_ns, start_time_unix_nano=1)
    return metric


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def families(store: OtlpMetrics) -> dict:
    text = render(list(otlp_families(*store.snapshot())), None)[0].decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_deltas_add_up_cumulatives_take_the_newest_and_labels_carry_the_resource():
    store = OtlpMetrics(max_series=100)
    t = 1_700_000_000_000_000_000
    for i, value in enumerate((3.0, 4.0)):
        store.merge(points_of(a_request(a_sum("app.calls", value, temporality=DELTA, time_ns=t + i, unit="{call}"),
                                        a_sum("app.bytes", 100.0 * (i + 1), temporality=CUMULATIVE, time_ns=t + i,
                                              unit="By"))))
    store.merge(points_of(a_request(a_sum("app.bytes", 50.0, temporality=CUMULATIVE, time_ns=t - 5, unit="By"))))
    found = families(store)
    calls = found["app_calls"].samples
    assert [(s.name, s.value) for s in calls] == [("app_calls_total", 7.0)]
    assert calls[0].labels == {"route": "/chat", "job": "llm/bot", "instance": "bot-1", "otel_scope_name": "app.metrics",
                               "otel_scope_version": "1.2"}
    assert [s.value for s in found["app_bytes"].samples] == [200.0]  # the older point came late: ignored
    assert found["target_info"].samples[0].labels == {"job": "llm/bot", "instance": "bot-1"}


def test_delta_histograms_add_up_and_up_down_deltas_are_dropped():
    store = OtlpMetrics(max_series=100)
    t = 1_700_000_000_000_000_000
    for i in range(3):
        store.merge(points_of(a_request(a_histogram("rpc.duration", [1, 2, 0], temporality=DELTA, time_ns=t + i),
                                        a_sum("queue.size", 1.0, temporality=DELTA, monotonic=False, time_ns=t))))
    found = families(store)
    assert "queue_size" not in found
    samples = {(s.name, s.labels.get("le")): s.value for s in found["rpc_duration_seconds"].samples}
    assert samples[("rpc_duration_seconds_bucket", "0.1")] == 3.0
    assert samples[("rpc_duration_seconds_bucket", "1.0")] == 9.0
    assert samples[("rpc_duration_seconds_bucket", "+Inf")] == 9.0
    assert samples[("rpc_duration_seconds_count", None)] == 9.0
    assert samples[("rpc_duration_seconds_sum", None)] == pytest.approx(4.5)


def test_series_without_points_for_the_staleness_window_are_dropped():
    clock = FakeClock()
    store = OtlpMetrics(max_series=100, staleness_s=300, clock=clock)
    t = 1_700_000_000_000_000_000
    store.merge(points_of(a_request(a_sum("a.calls", 1.0, temporality=CUMULATIVE, time_ns=t))))
    clock.now = 200
    store.merge(points_of(a_request(a_sum("b.calls", 1.0, temporality=CUMULATIVE, time_ns=t))))
    clock.now = 301
    assert set(families(store)) == {"b_calls", "target_info"}
    clock.now = 501
    assert families(store) == {}


def test_a_family_holds_at_most_max_series_label_sets():
    dropped: list[tuple[str, int]] = []
    store = OtlpMetrics(max_series=10, on_overflow=lambda name, n: dropped.append((name, n)))
    points = [a_sum("calls", 1.0, temporality=CUMULATIVE, time_ns=1_700_000_000_000_000_000,
                    attrs={"user": f"u{i}"}) for i in range(15)]
    store.merge(points_of(a_request(*points)))
    assert len(families(store)["calls"].samples) == 10
    assert dropped == [("calls_total", 5)]


@pytest.mark.parametrize("instrumentor", ["otel", "traceloop", "openlit"])
def test_the_corpus_metric_exports_are_re_exposed_as_prometheus_names(instrumentor: str):
    store = OtlpMetrics(max_series=1000)
    for path in sorted((CORPUS / instrumentor).glob("*.metrics.pb")):
        request = ExportMetricsServiceRequest.FromString(path.read_bytes())
        store.merge(points_of(request))
    found = families(store)
    assert "gen_ai_client_operation_duration_seconds" in found or "gen_ai_client_token_usage" in found, found.keys()
    for family in found.values():
        assert all("." not in label for s in family.samples for label in s.labels)


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool (Debian package prometheus, installed by `make test`) is not on PATH")
def test_promtool_parses_the_re_exposed_corpus():
    store = OtlpMetrics(max_series=1000)
    for path in sorted(CORPUS.glob("*/*.metrics.pb")):
        store.merge(points_of(ExportMetricsServiceRequest.FromString(path.read_bytes())))
    text = render(list(otlp_families(*store.snapshot())), None)[0]
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=60)
    # Exit 3 is lint about the apps' own metric names (a counter without a unit, say): ours to relay, not
    # to rename; 1 would be a text promtool cannot parse.
    assert result.returncode in (0, 3), result.stdout.decode() + result.stderr.decode()
    assert b"error" not in result.stderr.lower()
