"""Counted once, on a real app over a real embedded store: counters move when rows are committed, so
an export answered 503 (the store failed its insert) and retried, or a span sent twice, counts once;
items rejected one by one are counted by reason when the export is answered; refusals by status."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from llmlens.server.app import create_app
from llmlens.server.errors import StoreError
from llmlens.server.metrics.health import rejection_reason, rejections_by_reason
from llmlens.server.settings import load_settings
from llmlens.server.store import Store, open_backend
from tests.integration.otlp_requests import PROTOBUF, llm_attrs, make_span, new_trace_id, trace_request

DAY_NS = 86_400 * 10**9


class InsertsFail:
    """The real chDB backend, except that every insert fails while `failing` is set (a disk that
    refuses writes). Injected: a real chDB cannot be made to fail on demand."""

    def __init__(self, real) -> None:
        self.real = real
        self.failing = False

    def __getattr__(self, name: str):
        return getattr(self.real, name)

    def insert(self, table, data, token):
        if self.failing:
            raise StoreError("not enough space on the disk")
        self.real.insert(table, data, token)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[Store]:
    s = Store(InsertsFail(open_backend(data_dir=str(tmp_path_factory.mktemp("chdb") / "data"))))  # type: ignore[arg-type]
    yield s
    s.close()


@pytest_asyncio.fixture
async def app_client(store: Store, tmp_path) -> AsyncIterator[tuple[httpx.AsyncClient, InsertsFail]]:
    """A fresh app (fresh counters) on the module's store, spoken to in process (ASGI)."""
    settings = load_settings(flags={"data_dir": str(tmp_path), "ingest_workers": 0, "grpc_port": 0,
                                    "evaluate_alerts": False}, env={})
    app = create_app(settings, store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        yield client, store.backend  # type: ignore[misc]


async def scrape(client: httpx.AsyncClient) -> dict[str, dict[tuple, float]]:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def total(metrics: dict, name: str, **labels: str) -> float:
    return sum(v for k, v in metrics.get(name, {}).items() if set(labels.items()) <= set(k))


def a_call_request(service: str):
    now = time.time_ns()
    trace_id = new_trace_id()
    spans = [make_span("chat", trace_id=trace_id, start_ns=now + i, attrs=llm_attrs("gpt-4o-mini", 10, 5))
             for i in range(3)]
    return trace_request(spans, service=service).SerializeToString()


async def post(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post("/v1/traces", content=body, headers={"content-type": PROTOBUF})


async def test_an_export_answered_503_and_retried_counts_once(app_client):
    client, backend = app_client
    body = a_call_request("retry-svc")
    backend.failing = True
    refused = await post(client, body)
    assert refused.status_code == 503 and refused.headers["retry-after"]
    metrics = await scrape(client)
    assert total(metrics, "llm_requests_total", model="gpt-4o-mini") == 0  # nothing committed, nothing counted
    assert total(metrics, "llmlens_export_requests_refused_total", code="503", signal="traces") == 1
    backend.failing = False
    assert (await post(client, body)).status_code == 200  # the retry (the failed commit is finished first)
    assert (await post(client, body)).status_code == 200  # and a plain resend
    metrics = await scrape(client)
    assert total(metrics, "llm_requests_total", model="gpt-4o-mini", status="ok") == 3
    assert total(metrics, "traces_spanmetrics_calls_total", service="retry-svc") == 3
    assert total(metrics, "gen_ai_client_operation_duration_seconds_count", service_name="retry-svc") == 3
    assert total(metrics, "llm_tokens_total", direction="input") == 30
    assert total(metrics, "llmlens_spans_accepted_total") == 3
    assert total(metrics, "llmlens_ingest_duration_seconds_count", signal="traces") == 2  # the two answered 200


async def test_rejected_spans_are_counted_by_reason_when_answered(app_client):
    client, _ = app_client
    now = time.time_ns()
    spans = [make_span("old", start_ns=now - 400 * DAY_NS), make_span("future", start_ns=now + DAY_NS),
             make_span("fine", start_ns=now)]
    response = await post(client, trace_request(spans, service="clock-svc").SerializeToString())
    assert response.status_code == 200
    old_only = await post(client, trace_request([make_span("old", start_ns=now - 400 * DAY_NS)]).SerializeToString())
    assert old_only.status_code == 200  # all rejected: nothing to commit, still counted
    metrics = await scrape(client)
    assert total(metrics, "llmlens_spans_rejected_total", reason="too_old") == 2
    assert total(metrics, "llmlens_spans_rejected_total", reason="too_far_ahead") == 1
    assert total(metrics, "traces_spanmetrics_calls_total", service="clock-svc") == 1


async def test_refusals_are_counted_by_status(app_client):
    client, _ = app_client
    assert (await client.post("/v1/traces", content=b"\x00garbage", headers={"content-type": PROTOBUF})).status_code == 400
    assert (await client.post("/v1/logs", content=b"{}", headers={"content-type": "text/csv"})).status_code == 415
    await scrape(client)  # timed once it is answered: the next scrape shows it
    metrics = await scrape(client)
    assert total(metrics, "llmlens_export_requests_refused_total", code="400", signal="traces", transport="http") == 1
    assert total(metrics, "llmlens_export_requests_refused_total", code="415", signal="logs") == 1
    assert total(metrics, "llmlens_query_duration_seconds_count", route="/metrics") >= 1


def test_rejection_reasons_are_read_from_the_normalisers_messages():
    assert rejection_reason("span 'x': start time 2020-01-01T00:00:00Z is older than the 30-day retention") == "too_old"
    assert rejection_reason("log record: time 2030-01-01T00:00:00Z is more than 3600 s ahead of the server's "
                            "clock (max_future_skew_s)") == "too_far_ahead"
    assert rejection_reason("span 'x': input tokens 2000000000 is more than one call can use") == "implausible_usage"
    assert rejection_reason("span 'x': trace_id must be 16 non-zero bytes") == "invalid"
    # A batch keeps five messages: the rest go under the first one's reason.
    assert rejections_by_reason(12, ["a is older than the 30-day retention"] * 4 + ["bad span_id"]) == \
        {"too_old": 11, "invalid": 1}
