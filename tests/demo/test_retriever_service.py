"""The retriever as a real process on a loopback port, reporting to a real llmlens server."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from llmlens.demo.settings import free_port
from tests.demo.conftest import new_marker_env, processes_with_marker, scrape
from tests.server_process import ServerProcess


@dataclass
class Retriever:
    url: str
    proc: subprocess.Popen
    marker: str


@pytest.fixture(scope="module")
def retriever(llmlens_server: ServerProcess) -> Iterator[Retriever]:
    port = free_port()
    marker, env = new_marker_env()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmlens.demo.retriever",
            "--port",
            str(port),
            "--otlp-endpoint",
            llmlens_server.url,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "retriever not ready"
        time.sleep(0.1)
    yield Retriever(url, proc, marker)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_search_ranks_the_matching_article_first(retriever: Retriever) -> None:
    response = httpx.post(f"{retriever.url}/search", json={"query": "how do I reset my password", "top_k": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["index_size"] >= 20
    assert len(body["results"]) == 3
    assert body["results"][0]["doc_id"] == "reset-password"
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_min_score_and_bad_requests(retriever: Retriever) -> None:
    strict = httpx.post(f"{retriever.url}/search", json={"query": "zebra xylophone", "min_score": 0.9}).json()
    assert strict["results"] == []
    assert httpx.post(f"{retriever.url}/search", json={"query": "x", "top_k": 0}).status_code == 422
    assert httpx.post(f"{retriever.url}/search", json={"query": ""}).status_code == 422


def test_metrics_count_requests_searches_and_index_size(retriever: Retriever) -> None:
    httpx.post(f"{retriever.url}/search", json={"query": "webhooks", "top_k": 2})
    families = scrape(f"{retriever.url}/metrics")
    searches = {s.name: s.value for s in families["retriever_searches"]}
    assert searches["retriever_searches_total"] >= 1
    assert families["retriever_index_size"][0].value >= 20
    requests = [s for s in families["retriever_http_requests"] if s.name == "retriever_http_requests_total"]
    assert any(s.labels == {"endpoint": "/search", "method": "POST", "status": "200"} for s in requests)
    assert any(s.labels["status"] == "422" for s in requests)
    assert "retriever_http_request_duration_seconds" in families
    assert "retriever_search_results" in families


def test_spans_for_search_embedding_and_index(retriever: Retriever, llmlens_server: ServerProcess) -> None:
    httpx.post(f"{retriever.url}/search", json={"query": "export my workspace", "top_k": 4, "min_score": 0.0})
    # SIGTERM makes the service flush its telemetry before it exits.
    retriever.proc.send_signal(signal.SIGTERM)
    assert retriever.proc.wait(timeout=30) == 0
    assert processes_with_marker(retriever.marker) == []

    spans = _spans_of_search(llmlens_server, "export my workspace")
    by_name = {s["name"]: s for s in spans}
    search = by_name["retrieval larkspur-help-center"]
    attrs = search["attributes"]
    assert attrs["gen_ai.operation.name"] == "retrieval"
    assert int(attrs["retrieval.top_k"]) == 4
    assert int(attrs["retrieval.result.count"]) == 4
    assert int(attrs["retrieval.index.size"]) >= 20
    low, high, avg = (float(attrs[f"retrieval.score.{k}"]) for k in ("min", "max", "avg"))
    assert 0 <= low <= avg <= high <= 1
    assert by_name["embed query"]["parent_span_id"] == search["span_id"]
    assert by_name["vector index search"]["parent_span_id"] == search["span_id"]
    assert all(s["service"] == "demo-retriever" for s in spans)


def _spans_of_search(server: ServerProcess, query: str, timeout_s: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for item in server.get("/api/v1/traces", service="demo-retriever", limit=100).json()["items"]:
            spans = server.get(f"/api/v1/traces/{item['trace_id']}").json()["spans"]
            if any(s["attributes"].get("gen_ai.retrieval.query.text") == query for s in spans):
                return spans
        time.sleep(0.5)
    raise AssertionError(f"no retriever trace for {query!r} arrived")
