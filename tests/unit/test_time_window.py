"""Times and usage a record must carry to be stored: spans, LLM calls, scores, log records and metric
points outside [now - retention, now + max_future_skew_s], or with absurd token counts or costs, are
rejected one by one with the reason (what OTLP partial success reports); the rest of the request is
stored. Through the real decoders (protobuf fast path and OTLP/JSON) and the real normalisers."""

from __future__ import annotations

import time

import pyarrow as pa
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from llmlens.server.normalise import TimeWindow, build_cost_model
from llmlens.server.normalise.cost import MAX_COST_USD_PER_CALL, MAX_TOKENS_PER_CALL
from llmlens.server.receive.workers import build_batch
from llmlens.server.settings import SettingsError, load_settings
from llmlens.server.store.batch import Batch
from tests.integration.otlp_requests import (
    llm_attrs,
    log_request,
    make_log,
    make_span,
    metrics_request,
    new_trace_id,
    to_otlp_json,
    trace_request,
)

S = 10**9
DAY = 86_400 * S
YEAR_2200 = 7_258_118_400 * S
WINDOW = TimeWindow(retention_days=30, max_future_skew_s=3600)
COST = build_cost_model(window=WINDOW)


def build(signal: str, request, kind: str = "protobuf") -> Batch:
    body = to_otlp_json(request) if kind == "json" else request.SerializeToString()
    return build_batch(signal, body, kind, COST)


def column(batch: Batch, table: str, name: str) -> list:
    return batch.arrow[table].column(name).to_pylist() if table in batch.arrow else []


def test_bounds_run_from_the_retention_to_the_skew_past_now():
    now = 1_800_000_000 * S
    bounds = WINDOW.at(now)
    assert (bounds.earliest, bounds.latest) == (now - 30 * DAY, now + 3600 * S)
    assert bounds.check(now - 30 * DAY, "t") == bounds.check(now + 3600 * S, "t") == ""
    assert bounds.check(now - 30 * DAY - 1, "span 'a': start time") == (
        "span 'a': start time 2026-12-16T08:00:00Z is older than the 30-day retention")
    assert "is more than 3600 s ahead of the server's clock (max_future_skew_s)" in bounds.check(now + 3601 * S, "t")
    assert bounds.check(2**64 - 1, "t").startswith("t 2554-07-21T23:34:33Z is more than")  # uint64's end


@pytest.mark.parametrize("kind", ["protobuf", "json"])
def test_spans_outside_the_window_are_rejected_with_the_reason_and_the_rest_stored(kind):
    """A span in 2200 (whose day overflows trace_index's Date) and one older than the retention are
    rejected; the request's other spans, their LLM calls and trace index rows are built."""
    now = time.time_ns()
    trace_id = new_trace_id()
    good = make_span("good", trace_id=trace_id, start_ns=now - 5 * S, attrs=llm_attrs("gpt-4o-mini", 10, 2))
    future = make_span("future", trace_id=trace_id, start_ns=YEAR_2200, attrs=llm_attrs("gpt-4o-mini", 10, 2))
    old = make_span("old", start_ns=now - 31 * DAY)
    ends_late = make_span("ends late", start_ns=now, duration_ms=2 * 3600 * 1000)
    skewed = make_span("skewed", start_ns=now + 1800 * S)  # within the skew: accepted
    batch = build("traces", trace_request([good, future, old, ends_late, skewed]), kind).freeze()
    assert (batch.accepted, batch.rejected) == (2, 3)
    assert column(batch, "otel_traces", "SpanName") == ["good", "skewed"]
    assert len(column(batch, "llm_calls", "SpanId")) == 1
    assert column(batch, "trace_index", "SpanCount") != []
    message = batch.error_message()
    assert "span 'future': start time 2200-01-01T00:00:00Z is more than 3600 s ahead" in message
    assert "span 'old': start time" in message and "older than the 30-day retention" in message
    assert "span 'ends late': end time" in message


def test_a_score_is_filed_at_its_event_time_or_the_span_start_and_rejected_outside_the_window():
    now = time.time_ns()
    start = now - 10 * S
    spans = []
    for name, event_time in (("timed", now - 2 * S), ("untimed", 0), ("dated 2200", YEAR_2200)):
        span = make_span(name, start_ns=start)
        event = span.events.add(time_unix_nano=event_time, name="gen_ai.evaluation.result")
        event.attributes.add(key="gen_ai.evaluation.score.value").value.double_value = 0.5
        spans.append(span)
    batch = build("traces", trace_request(spans)).freeze()
    assert (batch.accepted, batch.rejected) == (2, 1)
    assert "span 'dated 2200': evaluation event time 2200-01-01T00:00:00Z" in batch.error_message()
    stamps = sorted(t.value for t in batch.arrow["llm_scores"].column("Timestamp").cast(pa.timestamp("ns")))
    assert stamps == [start, now - 2 * S]


@pytest.mark.parametrize(("attrs", "reason"), [
    ({"gen_ai.usage.input_tokens": 2**63 - 1}, f"input_tokens {2**63 - 1} is more than one call can use"),
    ({"gen_ai.usage.output_tokens": MAX_TOKENS_PER_CALL + 1}, "output_tokens 1000000001 is more than"),
    ({"llmlens.cost_usd": -0.5}, "reported cost -0.5 USD is outside 0..10000 USD for one call"),
    ({"llmlens.cost_usd": MAX_COST_USD_PER_CALL * 10}, "reported cost 100000 USD is outside"),
])
def test_absurd_usage_rejects_the_span_whole(attrs, reason):
    """Not clamped: the span, its LLM call and its trace index row are not stored at all, and the
    reason names the field and the value."""
    now = time.time_ns()
    bad = make_span("chat bad", start_ns=now, attrs={**llm_attrs("gpt-4o-mini", 10, 2), **attrs})
    fine = make_span("chat fine", start_ns=now, attrs={**llm_attrs("gpt-4o-mini", MAX_TOKENS_PER_CALL, 2),
                                                        "llmlens.cost_usd": 0.25})
    batch = build("traces", trace_request([bad, fine])).freeze()
    assert (batch.accepted, batch.rejected) == (1, 1)
    assert column(batch, "otel_traces", "SpanName") == ["chat fine"]
    assert column(batch, "llm_calls", "InputTokens") == [MAX_TOKENS_PER_CALL]
    assert column(batch, "llm_calls", "CostUsd") == [0.25]
    assert batch.error_message().startswith(f"span 'chat bad': {reason}")


def test_log_times_fall_back_to_observed_then_to_arrival_and_are_bounded():
    now = time.time_ns()
    observed_only = LogRecord(observed_time_unix_nano=now - 3 * S, body=AnyValue(string_value="observed only"))
    no_time = LogRecord(body=AnyValue(string_value="no time at all"))
    records = [make_log("timed", time_ns=now - 1 * S), observed_only, no_time,
               make_log("in 2200", time_ns=YEAR_2200), make_log("too old", time_ns=now - 40 * DAY),
               LogRecord(observed_time_unix_nano=YEAR_2200, body=AnyValue(string_value="observed in 2200"))]
    before = time.time_ns()
    batch = build("logs", log_request(records)).freeze()
    after = time.time_ns()
    assert (batch.accepted, batch.rejected) == (3, 3)
    stamps = dict(zip(column(batch, "otel_logs", "Body"),
                      (t.value for t in batch.arrow["otel_logs"].column("Timestamp").cast(pa.timestamp("ns"))),
                      strict=True))
    assert stamps["timed"] == now - 1 * S and stamps["observed only"] == now - 3 * S
    assert before - 1 * S <= stamps["no time at all"] <= after  # the arrival, judged once a request
    message = batch.error_message()
    assert "log record: time 2200-01-01T00:00:00Z is more than 3600 s ahead" in message
    assert "log record: time" in message and "older than the 30-day retention" in message
    assert "log record: observed time 2200-01-01T00:00:00Z" in message


def test_metric_points_are_bounded_by_their_time_and_a_future_start():
    now = time.time_ns()
    request: ExportMetricsServiceRequest = metrics_request()
    gauge = request.resource_metrics[0].scope_metrics[0].metrics.add(name="queue.depth").gauge
    gauge.data_points.add(time_unix_nano=now, as_int=1)
    gauge.data_points.add(time_unix_nano=YEAR_2200, as_int=2)
    gauge.data_points.add(time_unix_nano=now - 60 * DAY, as_int=3)
    total = request.resource_metrics[0].scope_metrics[0].metrics.add(name="requests").sum
    total.data_points.add(start_time_unix_nano=now - 400 * DAY, time_unix_nano=now, as_int=4)  # long-running
    total.data_points.add(start_time_unix_nano=YEAR_2200, time_unix_nano=now, as_int=5)
    batch = build("metrics", request).freeze()
    assert (batch.accepted, batch.rejected) == (2, 3)
    assert column(batch, "otel_metrics_gauge", "Value") == [1.0]
    assert column(batch, "otel_metrics_sum", "Value") == [4.0]
    message = batch.error_message()
    assert "metric 'queue.depth': data point time 2200-01-01T00:00:00Z is more than" in message
    assert "metric 'queue.depth': data point time" in message and "older than the 30-day retention" in message
    assert "metric 'requests': start time 2200-01-01T00:00:00Z" in message


def test_the_window_follows_the_settings():
    """A longer retention and skew accept what the defaults reject; no window accepts any time."""
    now = time.time_ns()
    request = trace_request([make_span("a", start_ns=now - 100 * DAY), make_span("b", start_ns=now + 2 * DAY)])
    body = request.SerializeToString()
    assert build_batch("traces", body, "protobuf", COST).rejected == 2
    wide = build_cost_model(window=TimeWindow(retention_days=365, max_future_skew_s=3 * 86400))
    assert build_batch("traces", body, "protobuf", wide).accepted == 2
    assert build_batch("traces", body, "protobuf", build_cost_model(window=None)).accepted == 2


def test_max_future_skew_s_setting():
    assert load_settings(env={}).max_future_skew_s == 3600.0
    assert load_settings(env={"LLMLENS_MAX_FUTURE_SKEW_S": "120"}).max_future_skew_s == 120.0
    for bad in (-1, 8 * 86400, float("nan")):
        with pytest.raises(SettingsError, match="max_future_skew_s must be between 0 and 604800"):
            load_settings({"max_future_skew_s": bad}, env={})
