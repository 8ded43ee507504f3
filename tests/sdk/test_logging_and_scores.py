"""configure_logging(): JSON lines with trace ids, masked, exported over OTLP; score() tied to traces."""

from __future__ import annotations

import io
import json
import logging
import urllib.request

import structlog
from prometheus_client.parser import text_string_to_metric_families

import llmlens
from tests.sdk.conftest import free_port


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_logs_carry_trace_ids_and_are_masked(sdk, receiver):
    sdk()
    out = io.StringIO()
    llmlens.configure_logging(stream=out)
    try:
        with llmlens.span("handle") as span:
            structlog.get_logger("support").info("refund requested", customer="jane@example.com", amount=12)
            logging.getLogger("stdlib.part").warning("call me at +44 20 7946 0958")
            ctx = span.get_span_context()
        logging.getLogger("stdlib.part").info("outside any span")
        llmlens.shutdown()
    finally:
        logging.getLogger().handlers.clear()
    trace_id, span_id = format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
    lines = _lines(out)
    refund = next(line for line in lines if line["event"] == "refund requested")
    assert refund["trace_id"] == trace_id and refund["span_id"] == span_id
    assert refund["level"] == "info" and refund["logger"] == "support" and "timestamp" in refund
    assert refund["customer"] == "<EMAIL>" and refund["amount"] == 12
    stdlib = next(line for line in lines if line["logger"] == "stdlib.part" and line["level"] == "warning")
    assert stdlib["trace_id"] == trace_id and "<PHONE>" in stdlib["event"]
    outside = next(line for line in lines if line["event"] == "outside any span")
    assert "trace_id" not in outside
    exported = {r.body: r for r in receiver.logs}
    assert exported["refund requested"].trace_id == trace_id
    assert exported["refund requested"].attributes["customer"] == "<EMAIL>"
    masked = [body for body in exported if "<PHONE>" in str(body)]
    assert masked and exported[masked[0]].span_id == span_id


def test_score_is_filed_under_the_target_trace(sdk, receiver):
    sdk(app="scores-app")
    target_trace, target_span = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    llmlens.score("helpfulness", 0.25, trace_id=target_trace, span_id=target_span, comment="missed the point",
                  label="bad")
    port = free_port()
    llmlens.start_metrics_server(port)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    llmlens.shutdown()
    span = receiver.spans_named("evaluation helpfulness")[0]
    assert span.trace_id == target_trace and span.parent_span_id == target_span
    assert span.attributes["llmlens.score.trace_id"] == target_trace
    assert span.attributes["llmlens.score.span_id"] == target_span
    name, event = span.events[0]
    assert name == "gen_ai.evaluation.result"
    assert event == {"gen_ai.evaluation.name": "helpfulness", "gen_ai.evaluation.score.value": 0.25,
                     "gen_ai.evaluation.score.label": "bad", "gen_ai.evaluation.explanation": "missed the point"}
    gauge = [s for f in text_string_to_metric_families(text) if f.name == "llm_quality_score" for s in f.samples
             if s.labels == {"app": "scores-app", "name": "helpfulness"}]
    assert gauge and gauge[0].value == 0.25


def test_score_without_ids_targets_the_current_span(sdk, receiver):
    sdk()
    with llmlens.span("answer") as span:
        llmlens.score("groundedness", 1.0)
        ctx = span.get_span_context()
    llmlens.shutdown()
    score = receiver.spans_named("evaluation groundedness")[0]
    assert score.trace_id == format(ctx.trace_id, "032x")
    assert score.attributes["llmlens.score.span_id"] == format(ctx.span_id, "016x")
