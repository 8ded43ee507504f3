"""The query API over spans, logs and metrics this module builds and sends itself: filters,
cursor pagination, ordering, LLM statistics (groups, step buckets, percentiles), log search,
metric series and the OpenAPI document, each checked against what was sent."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    HistogramDataPoint,
    NumberDataPoint,
)

from llmlens.pricing import PriceBook
from tests.integration.otlp_requests import (
    MS,
    fetch_all_traces,
    key_values,
    llm_attrs,
    log_request,
    make_log,
    make_span,
    metrics_request,
    new_trace_id,
    post,
    trace_request,
)
from tests.server_process import ServerProcess

BUCKETS = 5  # minute i holds i + 1 traces: 15 traces in all
MODELS = ("gpt-4o-mini", "gpt-4o")
SECOND = 1_000_000_000


@dataclass(frozen=True)
class SentCall:
    trace_id: str
    service: str
    model: str
    start_ns: int
    llm_ms: float          # the LLM span's duration
    trace_ms: float        # root span: the whole trace
    error: bool
    input_tokens: int
    output_tokens: int
    tier: str
    bucket: int

    @property
    def cost(self) -> float:
        price = PriceBook.default().cost(self.model, "openai", input_tokens=self.input_tokens,
                                         output_tokens=self.output_tokens)
        assert price is not None
        return price


@dataclass(frozen=True)
class Dataset:
    server: ServerProcess
    base: datetime           # start of the first minute bucket
    calls: list[SentCall]
    log_trace_id: str

    def window(self, **extra: Any) -> dict[str, Any]:
        return {"start": iso(self.base - timedelta(minutes=1)), "end": iso(self.base + timedelta(minutes=10)),
                **extra}

    def ids(self, predicate=lambda c: True) -> set[str]:
        return {c.trace_id for c in self.calls if predicate(c)}


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def data(llmlens_server: ServerProcess) -> Dataset:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    base = now - timedelta(minutes=20)
    base_ns = int(base.timestamp()) * SECOND
    calls, spans_by_service = [], {"api": [], "worker": []}
    k = 0
    for bucket in range(BUCKETS):
        for j in range(bucket + 1):
            error = k % 5 == 4
            call = SentCall(
                trace_id="", service=("api", "worker")[k % 2], model=MODELS[k % 3 == 2], bucket=bucket,
                start_ns=base_ns + bucket * 60 * SECOND + j * 5 * SECOND, llm_ms=100.0 * (k + 1),
                trace_ms=100.0 * (k + 1) + 10, error=error, input_tokens=0 if error else 10 * (k + 1),
                output_tokens=0 if error else 5 * (k + 1), tier="gold" if k % 3 == 0 else "free")
            trace_id = new_trace_id()
            root = make_span("handle-request", trace_id=trace_id, start_ns=call.start_ns, duration_ms=call.trace_ms,
                             attrs={"customer.tier": call.tier})
            llm = make_span(f"chat {call.model}", trace_id=trace_id, parent=root.span_id,
                            start_ns=call.start_ns + 5 * MS, duration_ms=call.llm_ms, error=error,
                            attrs=llm_attrs(call.model, call.input_tokens, call.output_tokens))
            spans_by_service[call.service] += [root, llm]
            calls.append(SentCall(**{**call.__dict__, "trace_id": trace_id.hex()}))
            k += 1
    for service, spans in spans_by_service.items():
        answer = post(llmlens_server.url, "traces", trace_request(spans, service=service))
        assert answer.status_code == 200, answer.text

    log_trace = bytes.fromhex(calls[0].trace_id)
    records = [
        make_log("User logged in", severity=9, time_ns=base_ns + 1 * SECOND),
        make_log("cache miss for key user:42", severity=13, severity_text="WARN", time_ns=base_ns + 2 * SECOND),
        make_log("Payment FAILED for order 17", severity=17, time_ns=base_ns + 3 * SECOND, trace_id=log_trace),
        make_log("retrying payment for order 17", severity=9, time_ns=base_ns + 4 * SECOND, trace_id=log_trace),
        make_log("disk almost full", severity=21, time_ns=base_ns + 5 * SECOND),
    ]
    assert post(llmlens_server.url, "logs", log_request(records, service="api")).status_code == 200
    assert post(llmlens_server.url, "metrics", _metrics(base_ns)).status_code == 200
    return Dataset(llmlens_server, base, calls, calls[0].trace_id)


def _metrics(base_ns: int):
    request = metrics_request(service="api")
    metrics = request.resource_metrics[0].scope_metrics[0].metrics
    gauge = metrics.add(name="itest.queue.depth", unit="{item}", description="items waiting")
    gauge.gauge.data_points.extend(
        NumberDataPoint(time_unix_nano=base_ns + i * 60 * SECOND, as_int=i * 10, attributes=key_values({"q": "main"}))
        for i in range(BUCKETS))
    counter = metrics.add(name="itest.requests", unit="{request}")
    counter.sum.is_monotonic = True
    counter.sum.aggregation_temporality = AGGREGATION_TEMPORALITY_CUMULATIVE
    counter.sum.data_points.extend(
        NumberDataPoint(time_unix_nano=base_ns + i * 60 * SECOND, start_time_unix_nano=base_ns, as_double=1.5 * i)
        for i in range(BUCKETS))
    histogram = metrics.add(name="itest.latency", unit="ms")
    histogram.histogram.aggregation_temporality = AGGREGATION_TEMPORALITY_CUMULATIVE
    histogram.histogram.data_points.extend(
        HistogramDataPoint(time_unix_nano=base_ns + i * 60 * SECOND, start_time_unix_nano=base_ns, count=4 * (i + 1),
                           sum=100.0 * (i + 1), explicit_bounds=[10, 100], bucket_counts=[i + 1, 2 * (i + 1), i + 1])
        for i in range(BUCKETS))
    return request


def get(data: Dataset, path: str, **params: Any) -> Any:
    answer = httpx.get(data.server.url + path, params=params, timeout=30)
    assert answer.status_code == 200, f"{path} {params}: {answer.status_code} {answer.text[:300]}"
    return answer.json()


def traces(data: Dataset, **params: Any) -> list[dict[str, Any]]:
    return fetch_all_traces(data.server.url, data.window(**params), page_size=1000)


# --- traces ---------------------------------------------------------------------------------

def test_trace_list_is_newest_first_and_complete(data: Dataset) -> None:
    """All sent traces are listed once, newest first, with their span counts, durations and LLM sums."""
    items = traces(data)
    assert [t["trace_id"] for t in items] == [c.trace_id for c in sorted(data.calls, key=lambda c: -c.start_ns)]
    by_id = {c.trace_id: c for c in data.calls}
    for item in items:
        call = by_id[item["trace_id"]]
        assert item["span_count"] == 2 and item["llm_calls"] == 1
        assert item["root_name"] == "handle-request" and item["root_service"] == call.service
        assert item["duration_ms"] == pytest.approx(call.trace_ms, abs=0.01)
        assert item["error"] is call.error
        assert (item["input_tokens"], item["output_tokens"]) == (call.input_tokens, call.output_tokens)
        assert item["cost_usd"] == pytest.approx(0.0 if call.error else call.cost, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("page_size", [1, 4, 7, 15])
def test_cursor_pagination_has_no_duplicates_and_no_gaps(data: Dataset, page_size: int) -> None:
    """Following next_cursor at any page size yields exactly the one-page result, in the same order."""
    whole = [t["trace_id"] for t in traces(data)]
    paged = [t["trace_id"] for t in fetch_all_traces(data.server.url, data.window(), page_size=page_size)]
    assert paged == whole
    assert len(set(paged)) == len(paged) == len(data.calls)


def test_last_page_has_no_cursor(data: Dataset) -> None:
    """A page that holds the rest of the results has next_cursor null; a full one has a cursor."""
    assert get(data, "/api/v1/traces", **data.window(limit=len(data.calls)))["next_cursor"] is None
    assert get(data, "/api/v1/traces", **data.window(limit=len(data.calls) - 1))["next_cursor"]


FILTERS = {
    "service": ({"service": "worker"}, lambda c: c.service == "worker"),
    "name": ({"name": "chat gpt-4o"}, lambda c: c.model == "gpt-4o"),
    "model": ({"model": "gpt-4o-mini"}, lambda c: c.model == "gpt-4o-mini"),
    "status-error": ({"status": "error"}, lambda c: c.error),
    "status-ok": ({"status": "ok"}, lambda c: not c.error),
    "min-duration": ({"min_duration_ms": 710}, lambda c: c.trace_ms >= 710),
    "max-duration": ({"max_duration_ms": 410}, lambda c: c.trace_ms <= 410),
    "duration-range": ({"min_duration_ms": 300, "max_duration_ms": 1000}, lambda c: 300 <= c.trace_ms <= 1000),
    "span-attr": ({"attr": "customer.tier:gold"}, lambda c: c.tier == "gold"),
    "resource-attr": ({"attr": "service.name:api"}, lambda c: c.service == "api"),
    "two-attrs": ({"attr": ["customer.tier:free", "service.name:worker"]},
                  lambda c: c.tier == "free" and c.service == "worker"),
    "combined": ({"service": "api", "model": "gpt-4o-mini", "status": "ok"},
                 lambda c: c.service == "api" and c.model == "gpt-4o-mini" and not c.error),
    "no-match": ({"service": "nobody"}, lambda c: False),
}


@pytest.mark.parametrize("case", list(FILTERS))
def test_trace_filters_select_exactly_the_matching_traces(data: Dataset, case: str) -> None:
    """Each filter (and combination) returns exactly the traces whose sent facts match it."""
    params, predicate = FILTERS[case]
    assert {t["trace_id"] for t in traces(data, **params)} == data.ids(predicate)


def test_time_window_selects_traces_by_start(data: Dataset) -> None:
    """start/end select the traces that start inside the window (bucket 2 only)."""
    window = {"start": iso(data.base + timedelta(minutes=2)), "end": iso(data.base + timedelta(minutes=2, seconds=59))}
    found = fetch_all_traces(data.server.url, window, page_size=100)
    assert {t["trace_id"] for t in found} == data.ids(lambda c: c.bucket == 2)


def test_one_trace_has_both_spans_and_llm_facts(data: Dataset) -> None:
    """/traces/{id} (upper-case id accepted) returns root and LLM span, parent link, and the LLM facts."""
    call = next(c for c in data.calls if not c.error)
    trace = get(data, f"/api/v1/traces/{call.trace_id.upper()}")
    assert trace["trace_id"] == call.trace_id
    root = next(s for s in trace["spans"] if s["parent_span_id"] is None)
    child = next(s for s in trace["spans"] if s["parent_span_id"] is not None)
    assert child["parent_span_id"] == root["span_id"]
    assert root["attributes"]["customer.tier"] == call.tier and root["llm"] is None
    assert child["duration_ms"] == pytest.approx(call.llm_ms)
    assert child["start_unix_nano"] == call.start_ns + 5 * MS
    llm = child["llm"]
    assert (llm["request_model"], llm["provider"], llm["operation"]) == (call.model, "openai", "chat")
    assert (llm["input_tokens"], llm["output_tokens"]) == (call.input_tokens, call.output_tokens)
    assert llm["cost_usd"] == pytest.approx(call.cost)


def test_unknown_trace_is_404_naming_the_id(data: Dataset) -> None:
    """A well-formed id that was never sent: 404 with the error envelope."""
    answer = httpx.get(f"{data.server.url}/api/v1/traces/{'ab' * 16}", timeout=30)
    assert answer.status_code == 404
    assert answer.json()["error"] == {"code": "not_found", "message": answer.json()["error"]["message"],
                                      "parameter": "trace_id"}


# --- LLM statistics ------------------------------------------------------------------------

def _percentile_bounds(values: list[float], q: float) -> tuple[float, float]:
    """The two sent values around the q-quantile: any sane estimator lands between them."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    return ordered[math.floor(position)], ordered[math.ceil(position)]


def test_stats_by_model_match_what_was_sent(data: Dataset) -> None:
    """Per model: requests, errors, error rate, token sums, cost, latency p50/p95/p99 within the sent values."""
    stats = get(data, "/api/v1/llm/stats", **data.window(group_by="model"))
    groups = {g["model"]: g for g in stats["groups"]}
    assert set(groups) == set(MODELS)
    for model, group in groups.items():
        calls = [c for c in data.calls if c.model == model]
        errors = sum(c.error for c in calls)
        assert group["requests"] == len(calls) and group["errors"] == errors
        assert group["error_rate"] == pytest.approx(errors / len(calls))
        assert group["input_tokens"] == sum(c.input_tokens for c in calls)
        assert group["output_tokens"] == sum(c.output_tokens for c in calls)
        assert group["cost_usd"] == pytest.approx(sum(c.cost for c in calls if not c.error), rel=1e-6)
        assert group["unpriced_requests"] == 0
        latencies = [c.llm_ms for c in calls]
        for key, q in (("latency_p50_ms", 0.5), ("latency_p95_ms", 0.95), ("latency_p99_ms", 0.99)):
            low, high = _percentile_bounds(latencies, q)
            assert low - 1 <= group[key] <= high + 1, f"{model} {key}={group[key]} not in [{low}, {high}]"
        assert group["ttft_p50_ms"] is None  # no call streamed


def test_stats_ordered_by_requests_and_grouped_by_two_keys(data: Dataset) -> None:
    """group_by service and model: one group per pair with its request count, busiest first."""
    groups = get(data, "/api/v1/llm/stats", **data.window(group_by=["service", "model"]))["groups"]
    expected = {}
    for call in data.calls:
        expected[(call.service, call.model)] = expected.get((call.service, call.model), 0) + 1
    assert {(g["service"], g["model"]): g["requests"] for g in groups} == expected
    assert [g["requests"] for g in groups] == sorted((g["requests"] for g in groups), reverse=True)


def test_stats_step_buckets_count_each_minute(data: Dataset) -> None:
    """step=1m: one bucket per minute with i + 1 requests in minute i, in time order."""
    stats = get(data, "/api/v1/llm/stats", **data.window(step="1m"))
    assert stats["step_seconds"] == 60
    buckets = [(g["bucket"], g["requests"]) for g in stats["groups"]]
    want = [(iso(data.base + timedelta(minutes=i)).replace("Z", ".000000Z"), i + 1) for i in range(BUCKETS)]
    assert buckets == want


def test_stats_step_and_group_by_together(data: Dataset) -> None:
    """step=5m with group_by=model: the buckets' requests per model add up to the per-model totals."""
    groups = get(data, "/api/v1/llm/stats", **data.window(step="5m", group_by="model"))["groups"]
    totals: dict[str, int] = {}
    for group in groups:
        totals[group["model"]] = totals.get(group["model"], 0) + group["requests"]
    assert totals == {m: sum(c.model == m for c in data.calls) for m in MODELS}


def test_stats_filters_narrow_the_calls(data: Dataset) -> None:
    """service and model filters: only matching calls are counted."""
    groups = get(data, "/api/v1/llm/stats", **data.window(service="worker", model="gpt-4o-mini"))["groups"]
    assert len(groups) == 1
    assert groups[0]["requests"] == len(data.ids(lambda c: c.service == "worker" and c.model == "gpt-4o-mini"))


# --- logs -----------------------------------------------------------------------------------

def _logs(data: Dataset, **params: Any) -> list[dict[str, Any]]:
    return get(data, "/api/v1/logs", **data.window(**params))["items"]


def test_logs_newest_first(data: Dataset) -> None:
    """All five records come back, newest first, with severity and service."""
    items = _logs(data)
    assert [i["body"] for i in items] == ["disk almost full", "retrying payment for order 17",
                                          "Payment FAILED for order 17", "cache miss for key user:42",
                                          "User logged in"]
    assert {i["service"] for i in items} == {"api"}
    assert items[3]["severity"] == "WARN" and items[3]["severity_number"] == 13


def test_logs_text_search_is_case_insensitive(data: Dataset) -> None:
    """q=payment finds both payment lines whatever their case; q=nothing-like-this finds none."""
    assert {i["body"] for i in _logs(data, q="payment")} == {"Payment FAILED for order 17",
                                                            "retrying payment for order 17"}
    assert _logs(data, q="nothing-like-this") == []


@pytest.mark.parametrize(("severity", "count"), [("trace", 5), ("info", 5), ("warn", 3), ("error", 2),
                                                 ("fatal", 1), ("17", 2)])
def test_logs_minimum_severity(data: Dataset, severity: str, count: int) -> None:
    """severity is a minimum: warn returns warn, error and fatal records."""
    assert len(_logs(data, severity=severity)) == count


def test_logs_by_trace_id(data: Dataset) -> None:
    """trace_id returns the records of that trace only (and works without a time range)."""
    items = get(data, "/api/v1/logs", trace_id=data.log_trace_id)["items"]
    assert {i["body"] for i in items} == {"Payment FAILED for order 17", "retrying payment for order 17"}
    assert {i["trace_id"] for i in items} == {data.log_trace_id}


def test_logs_limit(data: Dataset) -> None:
    """limit=2 returns the two newest records."""
    assert [i["body"] for i in _logs(data, limit=2)] == ["disk almost full", "retrying payment for order 17"]


# --- metrics --------------------------------------------------------------------------------

def test_metrics_list_names_types_and_units(data: Dataset) -> None:
    """The three sent metrics are listed with their type, unit, point count and service."""
    items = {i["name"]: i for i in get(data, "/api/v1/metrics", **data.window())["items"]}
    assert (items["itest.queue.depth"]["type"], items["itest.queue.depth"]["unit"]) == ("gauge", "{item}")
    assert (items["itest.requests"]["type"], items["itest.requests"]["unit"]) == ("sum", "{request}")
    assert (items["itest.latency"]["type"], items["itest.latency"]["unit"]) == ("histogram", "ms")
    for name in ("itest.queue.depth", "itest.requests", "itest.latency"):
        assert items[name]["points"] == BUCKETS and items[name]["services"] == ["api"]


def test_gauge_series_has_every_point_in_time_order(data: Dataset) -> None:
    """The gauge's series: one series (service api, q=main), five points 0..40 a minute apart."""
    series = get(data, "/api/v1/metrics/itest.queue.depth/series", **data.window())
    assert series["type"] == "gauge" and len(series["series"]) == 1
    only = series["series"][0]
    assert only["service"] == "api" and only["attributes"] == {"q": "main"}
    assert [p["value"] for p in only["points"]] == [0, 10, 20, 30, 40]
    times = [datetime.fromisoformat(p["time"].replace("Z", "+00:00")) for p in only["points"]]
    assert times == [data.base + timedelta(minutes=i) for i in range(BUCKETS)]


def test_sum_and_histogram_series_values(data: Dataset) -> None:
    """A sum's points are its values; a histogram's carry count, sum and value = sum / count."""
    sums = get(data, "/api/v1/metrics/itest.requests/series", **data.window())["series"][0]["points"]
    assert [p["value"] for p in sums] == [1.5 * i for i in range(BUCKETS)]
    histogram = get(data, "/api/v1/metrics/itest.latency/series", **data.window())
    assert histogram["type"] == "histogram"
    points = histogram["series"][0]["points"]
    assert [(p["count"], p["sum"]) for p in points] == [(4 * (i + 1), 100.0 * (i + 1)) for i in range(BUCKETS)]
    assert all(p["value"] == pytest.approx(25.0) for p in points)


def test_metric_series_service_filter_and_unknown_metric(data: Dataset) -> None:
    """A service with no points of the metric and an unknown metric: 404 naming the metric."""
    for path, params in (("/api/v1/metrics/itest.queue.depth/series", {"service": "worker"}),
                         ("/api/v1/metrics/itest.never.sent/series", {})):
        answer = httpx.get(data.server.url + path, params=data.window(**params), timeout=30)
        assert answer.status_code == 404 and answer.json()["error"]["parameter"] == "name"


# --- health, status, OpenAPI ----------------------------------------------------------------

def test_health_ready_and_status(data: Dataset) -> None:
    """healthz and readyz answer; status counts at least what this module sent."""
    assert get(data, "/healthz") == {"status": "ok"}
    assert get(data, "/readyz") == {"status": "ready"}
    status = get(data, "/api/v1/status")
    assert status["spans"] >= 2 * len(data.calls) and status["logs"] >= 5 and status["metric_points"] >= 3 * BUCKETS
    assert status["backend"] == "chdb"


CONTRACT_PATHS = ["/api/v1/status", "/api/v1/traces", "/api/v1/traces/{trace_id}", "/api/v1/llm/stats",
                  "/api/v1/logs", "/api/v1/metrics", "/api/v1/metrics/{name}/series", "/healthz", "/readyz"]


def test_openapi_document_is_valid_and_covers_the_contract(data: Dataset) -> None:
    """/openapi.json is an OpenAPI 3 document listing every contract path and filter, with every $ref resolving."""
    spec = get(data, "/openapi.json")
    assert spec["openapi"].startswith("3.") and spec["info"]["title"] and spec["info"]["version"]
    assert set(CONTRACT_PATHS) <= set(spec["paths"])
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert method in ("get", "post", "put", "delete", "patch", "head", "options", "parameters"), path
            assert "responses" in operation and operation["responses"], f"{method} {path}"
    trace_params = {p["name"] for p in spec["paths"]["/api/v1/traces"]["get"]["parameters"]}
    assert {"start", "end", "service", "name", "model", "status", "min_duration_ms", "max_duration_ms", "attr",
            "limit", "cursor"} <= trace_params
    stats_params = {p["name"] for p in spec["paths"]["/api/v1/llm/stats"]["get"]["parameters"]}
    assert {"group_by", "step"} <= stats_params
    for ref in _refs(spec):
        node: Any = spec
        for part in ref.removeprefix("#/").split("/"):
            assert part in node, f"unresolved $ref {ref}"
            node = node[part]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for item in node for r in _refs(item)]
    return []
