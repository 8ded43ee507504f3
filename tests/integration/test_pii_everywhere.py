"""`llmlens serve --mask-pii` as a user runs it: the one PII fixture (tests/pii_fixture.py) sent
over OTLP/HTTP as protobuf (the C span decoder) and as JSON (the protobuf path), with logs,
metrics and a score. No API answer and no stored row holds it in clear; stats grouped by user
show the placeholder; the addresses of servers stay as sent."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import pii_fixture as pii
from tests.integration.otlp_requests import JSON, post
from tests.server_process import ServerProcess

TABLES = ("otel_traces", "llm_calls", "llm_scores", "trace_index", "otel_logs", "otel_metrics_gauge")
MASKED_TEXT = "contact <EMAIL> or <PHONE>, card <CREDIT_CARD>, key <API_KEY>"


class Sent:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.trace_ids: list[str] = []
        self.answers: dict[str, Any] = {}  # API path -> JSON answer (or text)
        self.stored: dict[str, list[dict[str, Any]]] = {}


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sent]:
    data_dir = tmp_path_factory.mktemp("pii") / "data"
    server = ServerProcess(data_dir, extra_args=["--mask-pii"]).start()
    result = Sent(server)
    try:
        now = time.time_ns()
        for i, content_type in enumerate(("application/x-protobuf", JSON)):
            request, trace_id, span_id = pii.traces(now + i * 1_000_000_000)
            _accepted(post(server.url, "traces", request, content_type=content_type))
            result.trace_ids.append(trace_id.hex())
        _accepted(post(server.url, "logs", pii.logs(now, trace_id, span_id)))
        _accepted(post(server.url, "metrics", pii.metrics(now)))
        server.wait_for_spans(6)
        result.answers = _api_answers(server, result.trace_ids)
    finally:
        code = server.terminate()
    assert code == 0, server.log()
    result.stored = _stored_rows(data_dir)
    yield result


def _accepted(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text


def _api_answers(server: ServerProcess, trace_ids: list[str]) -> dict[str, Any]:
    paths = [
        "/api/v1/traces?start=-1h",
        *(f"/api/v1/traces/{t}" for t in trace_ids),
        "/api/v1/llm/stats?start=-1h&group_by=user&group_by=session&group_by=department",
        "/api/v1/costs?group_by=user", "/api/v1/costs?group_by=department",
        "/api/v1/overview", "/api/v1/sessions", "/api/v1/scores",
        "/api/v1/logs?start=-1h", "/api/v1/metrics", f"/api/v1/metrics/{pii.METRIC}/series?start=-1h",
        "/api/v1/search?q=%7B%20%7D&start=-1h",
    ]
    answers: dict[str, Any] = {}
    for path in paths:
        response = httpx.get(server.url + path, timeout=30)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:300]}"
        answers[path] = response.json()
    answers["/metrics"] = httpx.get(server.url + "/metrics", timeout=30).text
    return answers


# Read after the server stopped (one process per data directory), in a process of its own (one
# chDB engine per process, and this one may already hold another).
_DUMP = """
import json, sys
from llmlens.server.store import open_backend
backend = open_backend(data_dir=sys.argv[1])
out = {t: backend.fetch(f"SELECT * FROM {t}") for t in sys.argv[2:]}
backend.close()
print(json.dumps(out, default=str))
"""


def _stored_rows(data_dir: Path) -> dict[str, list[dict[str, Any]]]:
    done = subprocess.run([sys.executable, "-c", _DUMP, str(data_dir), *TABLES], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_table_got_the_fixture(sent: Sent) -> None:
    counts = {table: len(rows) for table, rows in sent.stored.items()}
    assert counts == {"otel_traces": 6, "llm_calls": 2, "llm_scores": 2, "trace_index": counts["trace_index"],
                      "otel_logs": 1, "otel_metrics_gauge": 1}
    assert counts["trace_index"] >= 2


def test_no_stored_row_holds_pii(sent: Sent) -> None:
    assert pii.find_leaks(sent.stored) == []


def test_no_api_answer_holds_pii(sent: Sent) -> None:
    assert pii.find_leaks(sent.answers) == []


def test_stats_by_user_show_the_placeholder(sent: Sent) -> None:
    groups = sent.answers["/api/v1/llm/stats?start=-1h&group_by=user&group_by=session&group_by=department"]["groups"]
    keys = [(g["user"], g["session"], g["department"]) for g in groups]
    assert keys == [("<EMAIL>", "chat with <PHONE>", "sales (<EMAIL>)")], groups
    assert groups[0]["requests"] == 2
    by_user = sent.answers["/api/v1/costs?group_by=user"]
    assert "<EMAIL>" in json.dumps(by_user)


def test_stored_rows_are_masked_where_they_should_be_and_keep_infrastructure(sent: Sent) -> None:
    spans = {row["SpanName"]: row for row in sent.stored["otel_traces"]}
    assert set(spans) == {"POST /chat for <EMAIL>", f"chat {pii.MODEL}", "follow-up"}
    inbound = spans["POST /chat for <EMAIL>"]
    assert inbound["StatusMessage"] == MASKED_TEXT
    assert inbound["SpanAttributes"]["client.address"] == "<IP_ADDRESS>"
    assert inbound["SpanAttributes"]["server.address"] == pii.SERVER_IP
    call = spans[f"chat {pii.MODEL}"]["SpanAttributes"]
    assert (call["http.url"], call["server.address"]) == (pii.LOCAL_URL, pii.SERVER_IP)
    assert all(row["Comment"] == MASKED_TEXT for row in sent.stored["llm_scores"])
    assert {row["UserId"] for row in sent.stored["llm_calls"]} == {"<EMAIL>"}
    assert all(float(row["CostUsd"]) > 0 for row in sent.stored["llm_calls"])  # prices survive masking
    (log,) = sent.stored["otel_logs"]
    assert log["SeverityText"] == "WARN <EMAIL>" and log["Body"].endswith(f"called {pii.LOCAL_URL}")
    (point,) = sent.stored["otel_metrics_gauge"]
    assert point["Attributes"] == {"user.email": "<EMAIL>", "client.address": "<IP_ADDRESS>",
                                   "server.address": pii.SERVER_IP}


def test_trace_detail_shows_the_masked_span_with_its_server_address(sent: Sent) -> None:
    for trace_id in sent.trace_ids:
        detail = sent.answers[f"/api/v1/traces/{trace_id}"]
        text = json.dumps(detail)
        assert "POST /chat for <EMAIL>" in text and pii.SERVER_IP in text and pii.LOCAL_URL in text
        assert [s["comment"] for s in detail["scores"]] == [MASKED_TEXT]
