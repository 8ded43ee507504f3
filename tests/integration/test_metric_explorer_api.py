"""The metrics explorer's API on a real server: OTLP metrics of every type sent as an SDK sends them
(gauge, cumulative and delta sums, cumulative and delta histograms, an exponential histogram, a
summary), read back filtered, grouped and as percentiles, each checked against what was sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    AGGREGATION_TEMPORALITY_DELTA,
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    NumberDataPoint,
    SummaryDataPoint,
)

from tests.integration.otlp_requests import key_values, metrics_request, post
from tests.server_process import ServerProcess

SECOND = 1_000_000_000
MINUTES = 5


@dataclass(frozen=True)
class Data:
    server: ServerProcess
    base: datetime

    def window(self, **extra: Any) -> dict[str, Any]:
        return {"start": iso(self.base - timedelta(minutes=1)), "end": iso(self.base + timedelta(minutes=6)),
                "step": "1m", **extra}

    def bucket(self, minute: int) -> str:
        return iso(self.base + timedelta(minutes=minute))


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def gauge_value(service: str, q: str, minute: int) -> float:
    return 10.0 * minute + (100 if q == "slow" else 0) + (1000 if service == "worker" else 0)


REQUESTS = {"/a": [10, 20, 30, 5, 15], "/b": [1, 2, 3, 4, 5]}  # cumulative; /a restarts at minute 3
# cumulative bucket counts over bounds [10, 100, 1000] of xtest.latency, per route and minute
LATENCY = {"/a": [[0, 0, 0, 0], [0, 10, 0, 0], [0, 10, 0, 0], [4, 10, 0, 0]],
           "/b": [[0, 0, 0, 0], [0, 0, 10, 0], [0, 0, 10, 0], [0, 0, 10, 4]]}


def _request(service: str, base_ns: int):
    request = metrics_request(service=service)
    metrics = request.resource_metrics[0].scope_metrics[0].metrics
    at = [base_ns + m * 60 * SECOND + 10 * SECOND for m in range(MINUTES)]
    gauge = metrics.add(name="xtest.queue.depth", unit="{item}", description="items waiting")
    for q in ("main", "slow"):
        gauge.gauge.data_points.extend(
            NumberDataPoint(time_unix_nano=at[m], as_double=gauge_value(service, q, m), attributes=key_values({"q": q}))
            for m in range(MINUTES))
    if service != "api":
        return request
    counter = metrics.add(name="xtest.requests", unit="{request}")
    counter.sum.is_monotonic = True
    counter.sum.aggregation_temporality = AGGREGATION_TEMPORALITY_CUMULATIVE
    for route, values in REQUESTS.items():
        counter.sum.data_points.extend(
            NumberDataPoint(time_unix_nano=at[m], start_time_unix_nano=base_ns, as_int=v,
                            attributes=key_values({"route": route})) for m, v in enumerate(values))
    tokens = metrics.add(name="xtest.tokens", unit="{token}")
    tokens.sum.is_monotonic = True
    tokens.sum.aggregation_temporality = AGGREGATION_TEMPORALITY_DELTA
    tokens.sum.data_points.extend(
        NumberDataPoint(time_unix_nano=at[m] + k * SECOND, start_time_unix_nano=at[m] - 30 * SECOND, as_int=6)
        for m in range(MINUTES) for k in range(2))
    latency = metrics.add(name="xtest.latency", unit="ms")
    latency.histogram.aggregation_temporality = AGGREGATION_TEMPORALITY_CUMULATIVE
    for route, points in LATENCY.items():
        latency.histogram.data_points.extend(
            HistogramDataPoint(time_unix_nano=at[m], start_time_unix_nano=base_ns, count=sum(c), sum=50.0 * sum(c),
                               explicit_bounds=[10, 100, 1000], bucket_counts=c, attributes=key_values({"route": route}))
            for m, c in enumerate(points))
    sizes = metrics.add(name="xtest.exp.size", unit="By")
    sizes.exponential_histogram.aggregation_temporality = AGGREGATION_TEMPORALITY_DELTA
    sizes.exponential_histogram.data_points.extend(
        ExponentialHistogramDataPoint(
            time_unix_nano=at[m], start_time_unix_nano=at[m] - 60 * SECOND, count=8, sum=160.0, scale=0,
            positive=ExponentialHistogramDataPoint.Buckets(offset=3, bucket_counts=[4, 4]))
        for m in range(MINUTES))
    summary = metrics.add(name="xtest.summary", unit="s")
    summary.summary.data_points.extend(
        SummaryDataPoint(time_unix_nano=at[m], start_time_unix_nano=base_ns, count=4, sum=2.0 * (m + 1))
        for m in range(MINUTES))
    return request


@pytest.fixture(scope="module")
def data(llmlens_server: ServerProcess) -> Data:
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
    base_ns = int(base.timestamp()) * SECOND
    for service in ("api", "worker"):
        answer = post(llmlens_server.url, "metrics", _request(service, base_ns))
        assert answer.status_code == 200, answer.text
    return Data(llmlens_server, base)


def query(data: Data, name: str, **params: Any) -> dict[str, Any]:
    answer = httpx.get(data.server.url + "/api/v1/metrics/query", params=data.window(name=name, **params), timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def line(result: dict[str, Any], measure: str, **labels: str) -> dict[str, Any]:
    """A line's values by bucket (buckets without a value left out)."""
    found = next(s for s in result["series"] if s["labels"] == labels)
    return {b: v for b, v in zip(result["buckets"], found["values"][measure], strict=True) if v is not None}


def test_attributes_list_keys_values_and_services(data: Data) -> None:
    answer = httpx.get(data.server.url + "/api/v1/metrics/attributes",
                       params={"name": "xtest.queue.depth", "start": data.window()["start"]}, timeout=30).json()
    assert (answer["type"], answer["unit"], answer["description"]) == ("gauge", "{item}", "items waiting")
    assert answer["points"] == 2 * 2 * MINUTES
    assert answer["attributes"] == [{"key": "service", "values": ["api", "worker"], "cardinality": 2},
                                    {"key": "q", "values": ["main", "slow"], "cardinality": 2}]


def test_gauge_mean_per_bucket_grouped_and_filtered(data: Data) -> None:
    whole = query(data, "xtest.queue.depth")
    assert whole["measures"] == ["value"] and len(whole["series"]) == 1
    assert line(whole, "value") == {data.bucket(m): pytest.approx(
        sum(gauge_value(s, q, m) for s in ("api", "worker") for q in ("main", "slow")) / 4) for m in range(MINUTES)}
    by_two = query(data, "xtest.queue.depth", group_by="service,q")
    assert len(by_two["series"]) == 4
    for service in ("api", "worker"):
        for q in ("main", "slow"):
            assert line(by_two, "value", service=service, q=q) == {
                data.bucket(m): gauge_value(service, q, m) for m in range(MINUTES)}
    filtered = query(data, "xtest.queue.depth", filter=["service:worker", "q:slow"])
    assert line(filtered, "value") == {data.bucket(m): gauge_value("worker", "slow", m) for m in range(MINUTES)}
    assert filtered["filters"] == [{"key": "service", "value": "worker"}, {"key": "q", "value": "slow"}]


def test_cumulative_counter_value_and_rate_with_a_restart(data: Data) -> None:
    result = query(data, "xtest.requests", group_by="route")
    assert (result["temporality"], result["monotonic"], result["measures"]) == ("cumulative", True, ["value", "rate"])
    for route, values in REQUESTS.items():
        assert line(result, "value", route=route) == {data.bucket(m): v for m, v in enumerate(values)}
        # the series started inside the range: its first point counts whole; a drop is a restart
        increases = [values[0]] + [b - a if b >= a else b for a, b in zip(values, values[1:], strict=False)]
        assert line(result, "rate", route=route) == {
            data.bucket(m): pytest.approx(inc / 60) for m, inc in enumerate(increases)}
    total = query(data, "xtest.requests")
    assert line(total, "value") == {data.bucket(m): REQUESTS["/a"][m] + REQUESTS["/b"][m] for m in range(MINUTES)}


def test_cumulative_counter_without_its_start_has_no_first_rate(data: Data) -> None:
    late = {"start": iso(data.base + timedelta(minutes=1)), "end": iso(data.base + timedelta(minutes=6))}
    answer = httpx.get(data.server.url + "/api/v1/metrics/query",
                       params={"name": "xtest.requests", "group_by": "route", "step": "1m", **late}, timeout=30).json()
    rates = line(answer, "rate", route="/b")
    assert data.bucket(1) not in rates  # no point before it in the range: no baseline
    assert rates[data.bucket(2)] == pytest.approx(1 / 60)


def test_delta_counter_adds_its_points(data: Data) -> None:
    result = query(data, "xtest.tokens")
    assert result["temporality"] == "delta"
    assert line(result, "value") == {data.bucket(m): 12 for m in range(MINUTES)}
    assert line(result, "rate") == {data.bucket(m): pytest.approx(12 / 60) for m in range(MINUTES)}


def test_cumulative_histogram_percentiles_of_what_each_bucket_adds(data: Data) -> None:
    result = query(data, "xtest.latency", group_by="route", percentile="50,90")
    assert result["measures"] == ["p50", "p90", "count", "mean"]
    a = {m: line(result, m, route="/a") for m in ("p50", "p90", "count", "mean")}
    # minute 1: ten in (10, 100]; minute 2: nothing new; minute 3: four in (0, 10]
    assert a["count"] == {data.bucket(0): 0, data.bucket(1): 10, data.bucket(2): 0, data.bucket(3): 4}
    assert a["p50"] == {data.bucket(1): pytest.approx(55.0), data.bucket(3): pytest.approx(5.0)}
    assert a["p90"][data.bucket(1)] == pytest.approx(91.0)
    assert a["mean"][data.bucket(1)] == pytest.approx(50.0)
    b = line(result, "p90", route="/b")
    assert b[data.bucket(1)] == pytest.approx(910.0) and b[data.bucket(3)] == 1000  # the open bucket: its lower bound
    merged = query(data, "xtest.latency", percentile="50")
    # minute 1 merged: 10 in (10, 100] and 10 in (100, 1000]: the median is the boundary
    assert line(merged, "p50")[data.bucket(1)] == pytest.approx(100.0)
    assert line(merged, "count")[data.bucket(1)] == 20


def test_exponential_histogram_and_summary(data: Data) -> None:
    sizes = query(data, "xtest.exp.size", percentile=["25", "75"])
    assert sizes["type"] == "exponential_histogram" and sizes["temporality"] == "delta"
    assert line(sizes, "p25") == {data.bucket(m): pytest.approx(12.0) for m in range(MINUTES)}
    assert line(sizes, "p75") == {data.bucket(m): pytest.approx(24.0) for m in range(MINUTES)}
    assert line(sizes, "mean") == {data.bucket(m): 20.0 for m in range(MINUTES)}
    summary = query(data, "xtest.summary")
    assert summary["measures"] == ["mean", "count"]
    assert line(summary, "mean") == {data.bucket(m): pytest.approx(2.0 * (m + 1) / 4) for m in range(MINUTES)}


@pytest.mark.parametrize(("path", "params", "parameter"), [
    ("/api/v1/metrics/query", {"name": "xtest.latency", "percentile": "100"}, "percentile"),
    ("/api/v1/metrics/query", {"name": "xtest.latency", "percentile": "median"}, "percentile"),
    ("/api/v1/metrics/query", {"name": "xtest.latency", "filter": "route"}, "filter"),
    ("/api/v1/metrics/query", {"name": "xtest.latency", "step": "0s"}, "step"),
    ("/api/v1/metrics/query", {}, "name"),
    ("/api/v1/metrics/attributes", {"name": ""}, "name"),
])
def test_bad_parameters_are_400(data: Data, path: str, params: dict[str, str], parameter: str) -> None:
    answer = httpx.get(data.server.url + path, params={"start": data.window()["start"], **params}, timeout=30)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["parameter"] == parameter


def test_unknown_metric_is_404(data: Data) -> None:
    for path in ("/api/v1/metrics/query", "/api/v1/metrics/attributes"):
        answer = httpx.get(data.server.url + path, params={"name": "xtest.never", "start": "-1h"}, timeout=30)
        assert answer.status_code == 404 and answer.json()["error"]["parameter"] == "name"
    # a filter that matches nothing leaves the metric known but without lines
    assert query(data, "xtest.queue.depth", filter="q:nowhere")["series"] == []
