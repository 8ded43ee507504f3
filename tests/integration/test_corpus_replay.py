"""Replay every real OTLP body of the corpus (four instrumentors, pb and json) into a real server
and check every fact of each EXPECTED.json through the query API."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llmlens.pricing import PriceBook
from tests.conftest import CORPUS
from tests.integration.otlp_requests import export_response, fetch_all_traces
from tests.server_process import ServerProcess

INSTRUMENTORS = ("otel", "openlit", "phoenix", "traceloop")
REQUESTS = {"traces": ExportTraceServiceRequest, "logs": ExportLogsServiceRequest,
            "metrics": ExportMetricsServiceRequest}
_POINT_KINDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


def expected(instrumentor: str) -> dict[str, Any]:
    return json.loads((CORPUS / instrumentor / "EXPECTED.json").read_text())


def decode(path: Path) -> Any:
    """A corpus body as its protobuf request (OTLP/JSON ids are hex, protobuf's JSON wants base64)."""
    signal = path.name.split(".")[1]
    message = REQUESTS[signal]()
    if path.suffix == ".pb":
        message.ParseFromString(path.read_bytes())
        return message
    document = json.loads(path.read_bytes())
    _hex_to_b64(document)
    json_format.ParseDict(document, message, ignore_unknown_fields=True)
    return message


def _hex_to_b64(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                node[key] = base64.b64encode(bytes.fromhex(value)).decode()
            else:
                _hex_to_b64(value)
    elif isinstance(node, list):
        for item in node:
            _hex_to_b64(item)


def bodies() -> list[Path]:
    return sorted(p for inst in INSTRUMENTORS for p in (CORPUS / inst).iterdir() if p.suffix in (".pb", ".json")
                  and p.name != "EXPECTED.json")


def record_count(signal: str, message: Any) -> int:
    """Spans, log records or metric data points in one request."""
    if signal == "traces":
        return sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans)
    if signal == "logs":
        return sum(len(sl.log_records) for rl in message.resource_logs for sl in rl.scope_logs)
    total = 0
    for rm in message.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                total += len(getattr(metric, kind).data_points) if kind in _POINT_KINDS else 0
    return total


@dataclass
class Replay:
    server: ServerProcess
    before: dict[str, int]
    after: dict[str, int]
    sent: dict[str, int]          # records per signal in every body posted
    trace_ids: dict[str, str]     # body file name (instrumentor/name) -> its trace id
    answers: dict[str, httpx.Response]


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replay]:
    # The corpus keeps its capture timestamps; a long retention keeps them from expiring as the corpus ages.
    server = ServerProcess(tmp_path_factory.mktemp("corpus") / "data",
                           extra_args=["--retention-days", "3650"]).start()
    try:
        before = server.status()
        sent = {"traces": 0, "logs": 0, "metrics": 0}
        trace_ids: dict[str, str] = {}
        answers: dict[str, httpx.Response] = {}
        with httpx.Client(timeout=60) as client:
            for path in bodies():
                signal = path.name.split(".")[1]
                content_type = "application/x-protobuf" if path.suffix == ".pb" else "application/json"
                key = f"{path.parent.name}/{path.name}"
                answers[key] = client.post(f"{server.url}/v1/{signal}", content=path.read_bytes(),
                                           headers={"content-type": content_type})
                message = decode(path)
                sent[signal] += record_count(signal, message)
                if signal == "traces":
                    ids = {s.trace_id.hex() for rs in message.resource_spans for ss in rs.scope_spans for s in ss.spans}
                    assert len(ids) == 1, f"{key} holds more than one trace"
                    trace_ids[key] = ids.pop()
        yield Replay(server, before, server.status(), sent, trace_ids, answers)
    finally:
        if server.proc and server.proc.poll() is None:
            server.terminate()


CASES = [(inst, case, fmt) for inst in INSTRUMENTORS for case in expected(inst)["cases"] for fmt in ("pb", "json")]


def test_every_corpus_body_is_accepted_whole(replay: Replay) -> None:
    """Each of the corpus bodies gets a 200 whose partial_success rejects nothing."""
    assert len(replay.answers) >= 80
    for key, answer in replay.answers.items():
        assert answer.status_code == 200, f"{key}: {answer.status_code} {answer.text[:300]}"
        signal = key.split("/")[1].split(".")[1]
        response = export_response(signal, answer)
        rejected = (response.partial_success.rejected_spans if signal == "traces" else
                    response.partial_success.rejected_log_records if signal == "logs" else
                    response.partial_success.rejected_data_points)
        assert rejected == 0, f"{key}: {response.partial_success.error_message}"


def test_status_counts_every_span_log_and_metric_point(replay: Replay) -> None:
    """/api/v1/status grows by exactly the spans, log records and data points the bodies hold."""
    assert replay.sent["traces"] > 0 and replay.sent["logs"] > 0 and replay.sent["metrics"] > 0
    assert replay.after["spans"] - replay.before["spans"] == replay.sent["traces"]
    assert replay.after["logs"] - replay.before["logs"] == replay.sent["logs"]
    assert replay.after["metric_points"] - replay.before["metric_points"] == replay.sent["metrics"]


@pytest.mark.parametrize(("instrumentor", "case", "fmt"), CASES, ids=[f"{i}-{c}-{f}" for i, c, f in CASES])
def test_expected_facts_through_the_trace_api(replay: Replay, instrumentor: str, case: str, fmt: str) -> None:
    """The trace API shows the spans, names and normalised LLM facts EXPECTED.json lists for this body."""
    spec = expected(instrumentor)["cases"][case]
    want, truth = spec["expected"], spec["truth"]
    trace_id = replay.trace_ids[f"{instrumentor}/{case}.traces.{fmt}"]
    answer = httpx.get(f"{replay.server.url}/api/v1/traces/{trace_id}", timeout=30)
    assert answer.status_code == 200, answer.text
    spans = answer.json()["spans"]

    assert len(spans) == want["span_count"]
    assert sorted(f"{s['scope']['name']}:{s['name']}" for s in spans) == sorted(want["span_names"])
    llm_spans = [s for s in spans if s["llm"] is not None]
    assert len(llm_spans) == want["llm_span_count"]
    span = llm_spans[0]
    llm = span["llm"]

    assert llm["request_model"] == want["request_model"]
    assert llm["response_model"] == want["response_model"]
    assert llm["input_tokens"] == (want["input_tokens"] or 0)
    assert llm["output_tokens"] == (want["output_tokens"] or 0)
    if want["streamed"] is None:  # the instrumentor does not say; a backend may infer it, never contradict it
        assert llm["streaming"] in (None, truth["streamed"])
    else:
        assert llm["streaming"] is want["streamed"]
    assert (span["status"] == "error") is want["errored"]
    assert bool(llm["error_type"]) is want["errored"]


@pytest.mark.parametrize(("instrumentor", "case", "fmt"), CASES, ids=[f"{i}-{c}-{f}" for i, c, f in CASES])
def test_cost_priced_for_billed_calls_and_zero_for_errors(replay: Replay, instrumentor: str, case: str,
                                                          fmt: str) -> None:
    """Successful calls cost what the bundled price list says; a failed call the provider refused costs 0."""
    want = expected(instrumentor)["cases"][case]["expected"]
    trace_id = replay.trace_ids[f"{instrumentor}/{case}.traces.{fmt}"]
    llm = next(s["llm"] for s in httpx.get(f"{replay.server.url}/api/v1/traces/{trace_id}", timeout=30).json()["spans"]
               if s["llm"] is not None)
    if want["errored"]:
        assert llm["cost_usd"] in (0.0, None)
        return
    price = PriceBook.default().cost(want["response_model"], "openai", input_tokens=want["input_tokens"],
                                     output_tokens=want["output_tokens"] or 0)
    assert price is not None and price > 0, f"the price list has no {want['response_model']}"
    assert llm["priced"] is True
    assert llm["cost_usd"] == pytest.approx(price, rel=1e-6)


def test_trace_list_finds_the_corpus_by_model_and_status(replay: Replay) -> None:
    """/api/v1/traces over the corpus's time range filters by model and by error status."""
    starts = []
    for trace_id in replay.trace_ids.values():
        spans = httpx.get(f"{replay.server.url}/api/v1/traces/{trace_id}", timeout=30).json()["spans"]
        starts.extend(s["start_time"] for s in spans)
    window = {"start": min(starts), "end": _after(max(starts))}
    by_model = {t["trace_id"] for t in _all(replay.server, {**window, "model": "text-embedding-3-small"})}
    embedding_ids = {tid for key, tid in replay.trace_ids.items() if "/embeddings." in key}
    assert by_model == embedding_ids
    errors = {t["trace_id"] for t in _all(replay.server, {**window, "status": "error"})}
    assert errors == {tid for key, tid in replay.trace_ids.items() if "/error." in key}


def test_corpus_metric_names_are_listed(replay: Replay) -> None:
    """Every metric name in the corpus's metric bodies shows up in /api/v1/metrics."""
    names, times = set(), []
    for path in bodies():
        if ".metrics." not in path.name:
            continue
        for rm in decode(path).resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    names.add(metric.name)
                    kind = metric.WhichOneof("data")
                    times.extend(p.time_unix_nano for p in getattr(metric, kind).data_points)
    start = datetime.fromtimestamp(min(times) / 1e9 - 60, UTC).isoformat()
    end = datetime.fromtimestamp(max(times) / 1e9 + 60, UTC).isoformat()
    listed = httpx.get(f"{replay.server.url}/api/v1/metrics", params={"start": start, "end": end}, timeout=30)
    assert listed.status_code == 200, listed.text
    assert names <= {item["name"] for item in listed.json()["items"]}


def _after(rfc3339: str) -> str:
    return (datetime.fromisoformat(rfc3339.replace("Z", "+00:00")) + timedelta(seconds=1)).isoformat()


def _all(server: ServerProcess, params: dict[str, str]) -> list[dict[str, Any]]:
    return fetch_all_traces(server.url, params, page_size=100)
