"""Stateless replicas: two `llmlens serve` processes on one ClickHouse store.

What is shared is the store: spans exported to either replica are read through either, and an
export sent to both, one after the other (a load balancer retrying on the other replica), is
stored once. Each replica has its own writer; they meet only in the store.

The store is tests/chdb_http_endpoint.py (ClickHouse's HTTP interface in front of chDB), a stand-in
because no modern ClickHouse server installs on this machine. The replicas, their HTTP traffic,
clickhouse-connect and the SQL are real.
"""

from __future__ import annotations

import concurrent.futures
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmlens.server.store.schema import migrations
from tests.endpoint_process import EndpointProcess
from tests.integration.otlp_requests import (
    llm_attrs,
    log_request,
    make_log,
    make_span,
    new_trace_id,
    post,
    trace_request,
)
from tests.server_process import ServerProcess

SERVICE = "replicated-svc"


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    root = tmp_path_factory.mktemp("replicas")
    endpoint = EndpointProcess(root / "clickhouse", user="llmlens", password="replica-pass-1")
    env = {"LLMLENS_CLICKHOUSE_URL": endpoint.url("llmlens_replicas")}
    # As documented: the alert evaluator on one replica only. One process each (no ingest workers):
    # this machine has two cores for both replicas and the store.
    a = ServerProcess(root / "a", env=env, extra_args=["--ingest-workers", "0"])
    b = ServerProcess(root / "b", env=env, extra_args=["--ingest-workers", "0", "--no-evaluate-alerts"])
    try:
        # Started together on an empty store: both migrate it at once, as a deployment's replicas do.
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda server: server.start(), (a, b)))
        yield a, b
    finally:
        for server in (a, b):
            if server.proc and server.proc.poll() is None:
                server.terminate()
        endpoint.stop()


def get(server: ServerProcess, path: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(server.url + path, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def a_trace() -> tuple[str, list]:
    trace_id = new_trace_id()
    now = time.time_ns()
    root = make_span("handle-request", trace_id=trace_id, start_ns=now, duration_ms=500)
    chat = make_span("chat gpt-4o-mini", trace_id=trace_id, parent=root.span_id, start_ns=now + 1000,
                     duration_ms=200, attrs=llm_attrs("gpt-4o-mini", 100, 20))
    step = make_span("retrieve", trace_id=trace_id, parent=root.span_id, start_ns=now + 2000, duration_ms=50)
    return trace_id.hex(), [root, chat, step]


def listed(server: ServerProcess, trace_id: str) -> list[dict[str, Any]]:
    items = get(server, "/api/v1/traces", service=SERVICE, start="-1h", limit=1000)["items"]
    return [item for item in items if item["trace_id"] == trace_id]


def test_both_replicas_share_one_store_at_the_newest_schema(replicas: tuple[ServerProcess, ServerProcess]) -> None:
    statuses = [get(server, "/api/v1/status") for server in replicas]
    assert [s["backend"] for s in statuses] == ["clickhouse", "clickhouse"]
    assert [s["schema_version"] for s in statuses] == [migrations()[-1][0]] * 2
    for server in replicas:
        assert "Traceback" not in server.log()


def test_spans_sent_to_either_replica_are_read_through_either(replicas: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = replicas
    sent = {}
    for server in (a, b):
        trace_id, spans = a_trace()
        assert post(server.url, "traces", trace_request(spans, service=SERVICE)).status_code == 200
        sent[trace_id] = server
    for trace_id in sent:
        for reader in (a, b):
            detail = get(reader, f"/api/v1/traces/{trace_id}")
            assert sorted(s["name"] for s in detail["spans"]) == ["chat gpt-4o-mini", "handle-request", "retrieve"]
            [item] = listed(reader, trace_id)
            assert (item["span_count"], item["llm_calls"], item["input_tokens"]) == (3, 1, 100)


def test_an_export_sent_to_both_replicas_is_stored_once(replicas: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = replicas
    trace_id, spans = a_trace()
    traces = trace_request(spans, service=SERVICE).SerializeToString()
    marker = f"replica-log-{os.urandom(4).hex()}"
    logs = log_request([make_log(marker, trace_id=bytes.fromhex(trace_id)),
                        make_log(marker + " again")], service=SERVICE).SerializeToString()
    before = [get(server, "/api/v1/llm/stats", start="-1h", group_by="service") for server in (a, b)]
    # The exporter's first try reaches replica a; its retry, after a timeout, reaches b.
    for server in (a, b):
        assert post(server.url, "traces", traces).status_code == 200
        assert post(server.url, "logs", logs).status_code == 200
    for reader in (a, b):
        assert len(get(reader, f"/api/v1/traces/{trace_id}")["spans"]) == 3
        [item] = listed(reader, trace_id)
        assert (item["span_count"], item["llm_calls"], item["output_tokens"]) == (3, 1, 20)
        found = get(reader, "/api/v1/logs", q=marker, start="-1h", limit=100)
        assert sorted(r["body"] for r in found["items"]) == [marker, marker + " again"]
    for reader, earlier in zip((a, b), before, strict=True):
        requests = _requests(get(reader, "/api/v1/llm/stats", start="-1h", group_by="service"))
        assert requests == _requests(earlier) + 1


def _requests(stats: dict[str, Any]) -> int:
    return sum(g["requests"] for g in stats["groups"] if g["service"] == SERVICE)


def test_the_replicas_data_directories_hold_no_store(replicas: tuple[ServerProcess, ServerProcess]) -> None:
    """Stateless: nothing of the store is written beside a replica (its --data-dir is unused)."""
    for server in replicas:
        assert not Path(server.data_dir).exists() or not any(Path(server.data_dir).iterdir())
