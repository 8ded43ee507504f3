"""A real server rejects records whose times lie outside [now - retention_days, now + max_future_skew_s]
and spans with absurd usage through OTLP partial success (HTTP and gRPC), with the reason, and stores
the rest; a span in 2200 no longer fails the commit of the requests grouped with it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from tests.integration.otlp_requests import (
    export_response,
    llm_attrs,
    log_request,
    make_log,
    make_span,
    new_trace_id,
    post,
    trace_request,
)
from tests.server_process import ServerProcess

S = 10**9
HOUR = 3600 * S
DAY = 24 * HOUR
YEAR_2200 = 7_258_118_400 * S


@pytest.fixture(scope="module", params=["2", "0"], ids=["workers", "in-process"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The settings reach both decoding paths: ingest worker processes and the server process."""
    server = ServerProcess(tmp_path_factory.mktemp("window") / "data",
                           extra_args=["--retention-days", "2", "--max-future-skew-s", "600",
                                       "--ingest-workers", request.param]).start()
    yield server
    server.kill()


def spans_of(server: ServerProcess, trace_id: bytes) -> list[str]:
    answer = server.get(f"/api/v1/traces/{trace_id.hex()}")
    return sorted(s["name"] for s in answer.json()["spans"]) if answer.status_code == 200 else []


def test_a_span_in_2200_is_rejected_alone_and_its_commit_group_is_stored(server: ServerProcess) -> None:
    """Twelve concurrent exports, one of them holding a span dated 2200 beside a good one: every export
    gets 200, the bad span is reported through partial success, and every other span is stored."""
    now = time.time_ns()
    trace_ids = [new_trace_id() for _ in range(12)]
    answers: dict[int, object] = {}

    def send(i: int) -> None:
        spans = [make_span(f"ok-{i}", trace_id=trace_ids[i], start_ns=now - S)]
        if i == 5:
            spans.append(make_span("from 2200", trace_id=trace_ids[i], start_ns=YEAR_2200))
        answers[i] = post(server.url, "traces", trace_request(spans))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(answers[i].status_code == 200 for i in range(12)), {i: a.status_code for i, a in answers.items()}
    partial = export_response("traces", answers[5]).partial_success
    assert partial.rejected_spans == 1
    assert "span 'from 2200': start time 2200-01-01T00:00:00Z is more than 600 s ahead" in partial.error_message
    for i in range(12):
        assert spans_of(server, trace_ids[i]) == [f"ok-{i}"]


def test_records_older_than_the_retention_are_rejected_with_the_reason(server: ServerProcess) -> None:
    """--retention-days 2: a span and a log record three days old are refused (they would have been
    dropped by the TTL right after a 200); a day-old one is stored. Over OTLP/gRPC too."""
    now = time.time_ns()
    trace_id = new_trace_id()
    request = trace_request([make_span("day old", trace_id=trace_id, start_ns=now - DAY),
                             make_span("three days old", trace_id=trace_id, start_ns=now - 3 * DAY)])
    partial = export_response("traces", post(server.url, "traces", request)).partial_success
    assert partial.rejected_spans == 1
    assert "span 'three days old': start time" in partial.error_message
    assert "is older than the 2-day retention" in partial.error_message
    assert spans_of(server, trace_id) == ["day old"]

    logs = log_request([make_log("fresh", time_ns=now), make_log("stale", time_ns=now - 3 * DAY),
                        make_log("early", time_ns=now + 2 * HOUR)])
    with grpc.insecure_channel(server.grpc_target) as channel:
        response = logs_service_pb2_grpc.LogsServiceStub(channel).Export(logs, timeout=60)
        assert response.partial_success.rejected_log_records == 2
        assert "older than the 2-day retention" in response.partial_success.error_message
        assert "more than 600 s ahead" in response.partial_success.error_message
        spans = trace_request([make_span("grpc future", start_ns=now + HOUR)])
        response = trace_service_pb2_grpc.TraceServiceStub(channel).Export(spans, timeout=60)
        assert response.partial_success.rejected_spans == 1
    bodies = [row["body"] for row in server.get("/api/v1/logs", start="-4d", limit=100).json()["items"]]
    assert "fresh" in bodies and "stale" not in bodies and "early" not in bodies


def test_absurd_usage_is_rejected_and_counts_nothing(server: ServerProcess) -> None:
    """Token counts near 2**63 and a negative cost: the spans are refused (not clamped), so no total
    of the stats moves; a sane call beside them is counted."""
    now = time.time_ns()
    model = f"window-model-{now}"
    request = trace_request([
        make_span("chat huge", start_ns=now, attrs=llm_attrs(model, 2**63 - 1, 5)),
        make_span("chat negative", start_ns=now, attrs={**llm_attrs(model, 10, 5), "llmlens.cost_usd": -3.0}),
        make_span("chat sane", start_ns=now, attrs={**llm_attrs(model, 10, 5), "llmlens.cost_usd": 0.5}),
    ])
    partial = export_response("traces", post(server.url, "traces", request)).partial_success
    assert partial.rejected_spans == 2
    assert "input_tokens 9223372036854775807 is more than one call can use" in partial.error_message
    assert "reported cost -3 USD is outside 0..10000 USD" in partial.error_message
    groups = server.get("/api/v1/llm/stats", group_by="model", start="-1h", model=model).json()["groups"]
    assert [(g["model"], g["requests"], g["input_tokens"], g["cost_usd"]) for g in groups] == [(model, 1, 10, 0.5)]
