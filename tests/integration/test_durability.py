"""A 2xx means committed: kill -9 or SIGTERM a real server after or during a stream of exports,
restart it on the same data directory, and find every acknowledged span, log and point.
Also the start-up refusals: data directory in use, port taken, no API key beyond loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.metrics.v1.metrics_pb2 import NumberDataPoint

from tests.integration.otlp_requests import (
    export_response,
    fetch_all_traces,
    log_request,
    make_log,
    make_span,
    metrics_request,
    new_trace_id,
    post,
    trace_request,
)
from tests.server_process import ServerProcess, free_port

SPANS_PER_BATCH = 20
API_KEY = "itest-key-0123456789abcdef"


def batch(name: str) -> tuple[object, str]:
    """One export request holding one trace of SPANS_PER_BATCH spans; returns it and the trace id."""
    trace_id = new_trace_id()
    root = make_span(name, trace_id=trace_id, duration_ms=5)
    children = [make_span(f"{name}-child", trace_id=trace_id, parent=root.span_id) for _ in range(SPANS_PER_BATCH - 1)]
    return trace_request([root, *children], service="durability"), trace_id.hex()


@dataclass
class Stream:
    """Sender threads exporting batches until told to stop or the server goes away."""

    url: str
    grpc_target: str
    acknowledged: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, http_senders: int = 2, grpc_senders: int = 1) -> Stream:
        for i in range(http_senders):
            self.threads.append(threading.Thread(target=self._http, args=(f"http-{i}",), daemon=True))
        for i in range(grpc_senders):
            self.threads.append(threading.Thread(target=self._grpc, args=(f"grpc-{i}",), daemon=True))
        for thread in self.threads:
            thread.start()
        return self

    def wait_for(self, traces: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < traces and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.acknowledged) >= traces, f"only {len(self.acknowledged)} acknowledged; {self.failures[:3]}"

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def _ack(self, trace_id: str) -> None:
        with self.lock:
            self.acknowledged.append(trace_id)

    def _http(self, name: str) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                request, trace_id = batch(name)
                try:
                    answer = post(self.url, "traces", request, client=client)
                except httpx.HTTPError as exc:
                    self.failures.append(f"{name}: {exc!r}")
                    return
                if answer.status_code == 200 and not export_response("traces", answer).partial_success.rejected_spans:
                    self._ack(trace_id)
                else:
                    self.failures.append(f"{name}: {answer.status_code}")

    def _grpc(self, name: str) -> None:
        with grpc.insecure_channel(self.grpc_target) as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            while not self.stop.is_set():
                request, trace_id = batch(name)
                try:
                    response = stub.Export(request, timeout=30)
                except grpc.RpcError as exc:
                    self.failures.append(f"{name}: {exc.code()}")
                    return
                if not response.partial_success.rejected_spans:
                    self._ack(trace_id)


def assert_all_present(server: ServerProcess, acknowledged: list[str]) -> None:
    """Every acknowledged trace is listed with all its spans, and each span id is stored once at least."""
    listed = {t["trace_id"]: t["span_count"] for t in fetch_all_traces(server.url, {"start": "-2h"}, page_size=1000)}
    missing = [t for t in acknowledged if t not in listed]
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged traces lost, e.g. {missing[:3]}"
    short = {t: listed[t] for t in acknowledged if listed[t] < SPANS_PER_BATCH}
    assert not short, f"acknowledged traces missing spans: {list(short.items())[:3]}"
    for trace_id in (acknowledged[0], acknowledged[-1]):
        spans = server.get(f"/api/v1/traces/{trace_id}").json()["spans"]
        assert len({s["span_id"] for s in spans}) == SPANS_PER_BATCH
    assert server.status()["spans"] >= SPANS_PER_BATCH * len(acknowledged)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def started(data_dir: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers on the test's data directory; whatever is still running at the end is killed."""
    servers: list[ServerProcess] = []

    def start(**kwargs) -> ServerProcess:
        servers.append(ServerProcess(data_dir, **kwargs).start())
        return servers[-1]

    yield start
    for server in servers:
        server.kill()


# --- kill -9 --------------------------------------------------------------------------------

def test_kill_9_right_after_acknowledged_exports_loses_nothing(started: Callable[..., ServerProcess]) -> None:
    """Spans, logs and metric points acknowledged just before a SIGKILL are all there after a restart."""
    server = started()
    trace_ids = []
    for i in range(10):
        request, trace_id = batch(f"acked-{i}")
        assert post(server.url, "traces", request).status_code == 200
        trace_ids.append(trace_id)
    logs = log_request([make_log(f"durable log line {i}") for i in range(30)])
    assert post(server.url, "logs", logs).status_code == 200
    metrics = metrics_request()
    gauge = metrics.resource_metrics[0].scope_metrics[0].metrics.add(name="durable.gauge", unit="1")
    now = time.time_ns()
    gauge.gauge.data_points.extend(NumberDataPoint(time_unix_nano=now - i * 10**9, as_double=float(i))
                                   for i in range(25))
    assert post(server.url, "metrics", metrics).status_code == 200
    server.kill()

    restarted = started()
    status = restarted.status()
    assert (status["spans"], status["logs"], status["metric_points"]) == (10 * SPANS_PER_BATCH, 30, 25)
    assert_all_present(restarted, trace_ids)


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_stream_loses_no_acknowledged_span(started: Callable[..., ServerProcess]) -> None:
    """Two HTTP senders and one gRPC sender export while the server is SIGKILLed; after a restart
    every batch that got its 200/OK is there, whole."""
    server = started()
    stream = Stream(server.url, server.grpc_target).start()
    stream.wait_for(30)
    server.kill()  # while the senders are still sending
    stream.join()
    assert stream.failures, "the senders never noticed the server die"

    restarted = started()
    assert_all_present(restarted, stream.acknowledged)


# --- SIGTERM --------------------------------------------------------------------------------

@dataclass
class SigtermRun:
    exit_code: int
    acknowledged: list[str]
    restarted: ServerProcess
    log: str
    failures: list[str]


@pytest.fixture(scope="module")
def sigterm_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigtermRun]:
    """A server SIGTERMed while three senders stream to it, then restarted on the same data directory."""
    data_dir = tmp_path_factory.mktemp("sigterm") / "data"
    server = ServerProcess(data_dir).start()
    stream = Stream(server.url, server.grpc_target).start()
    try:
        stream.wait_for(30)
        exit_code = server.terminate()
    finally:
        stream.join()
        server.kill()
    restarted = ServerProcess(data_dir).start()
    yield SigtermRun(exit_code, list(stream.acknowledged), restarted, server.log(), list(stream.failures))
    restarted.kill()


@pytest.mark.slow
def test_sigterm_during_a_stream_keeps_every_acknowledged_span(sigterm_run: SigtermRun) -> None:
    """SIGTERM while exports stream in: every acknowledged batch is stored after the restart."""
    assert sigterm_run.exit_code in (0, -signal.SIGTERM), sigterm_run.log[-2000:]
    assert_all_present(sigterm_run.restarted, sigterm_run.acknowledged)


@pytest.mark.slow
def test_sigterm_stops_accepting_with_retryable_answers(sigterm_run: SigtermRun) -> None:
    """After SIGTERM, senders are turned away only in ways OTLP clients retry: connection refused/reset,
    429/503, or gRPC UNAVAILABLE; never a 4xx that drops data or a 500."""
    assert sigterm_run.failures, "no sender noticed the server stop"
    retryable = ("ConnectError", "RemoteProtocolError", "ReadError", "WriteError", ": 429", ": 503",
                 "StatusCode.UNAVAILABLE", "StatusCode.CANCELLED")
    assert all(any(word in failure for word in retryable) for failure in sigterm_run.failures), sigterm_run.failures


@pytest.mark.slow
def test_sigterm_during_a_stream_exits_0(sigterm_run: SigtermRun) -> None:
    """SIGTERM while exports stream in: the server exits with status 0 after finishing."""
    assert sigterm_run.exit_code == 0


# --- start-up refusals ----------------------------------------------------------------------

def serve(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `llmlens serve` expecting it to refuse to start (it must exit by itself, quickly)."""
    environment = {k: v for k, v in os.environ.items() if k != "LLMLENS_API_KEY"}
    return subprocess.run([sys.executable, "-m", "llmlens.cli", "serve", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=120, env={**environment, **(env or {})})


def test_second_server_on_the_same_data_dir_refuses_to_start(started: Callable[..., ServerProcess],
                                                             data_dir: Path) -> None:
    """A second `llmlens serve` on a data directory in use exits non-zero saying so; the first keeps serving."""
    first = started()
    second = serve(data_dir, "--http-port", str(free_port()), "--grpc-port", str(free_port()))
    assert second.returncode != 0
    assert "in use by another llmlens process" in second.stderr
    assert str(data_dir.resolve()) in second.stderr
    request, trace_id = batch("after-second")
    assert post(first.url, "traces", request).status_code == 200
    assert first.get(f"/api/v1/traces/{trace_id}").status_code == 200


@pytest.mark.parametrize("flag", ["--http-port", "--grpc-port"])
def test_taken_port_refuses_to_start_with_a_clear_message(data_dir: Path, flag: str) -> None:
    """A port another process listens on: non-zero exit naming the port and the flag to change it."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = {"--http-port": str(free_port()), "--grpc-port": str(free_port()), flag: str(taken)}
        result = serve(data_dir, *[x for pair in ports.items() for x in pair])
    assert result.returncode != 0
    assert f"127.0.0.1:{taken}" in result.stderr and "in use" in result.stderr and flag in result.stderr


def test_non_loopback_host_without_api_key_refuses_to_start(data_dir: Path) -> None:
    """--host 0.0.0.0 without LLMLENS_API_KEY: non-zero exit telling how to set the key."""
    result = serve(data_dir, "--host", "0.0.0.0", "--http-port", str(free_port()), "--grpc-port", str(free_port()))
    assert result.returncode != 0
    assert "LLMLENS_API_KEY" in result.stderr and "0.0.0.0" in result.stderr


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server beyond loopback (0.0.0.0) with an API key, shared by the key tests."""
    server = ServerProcess(tmp_path_factory.mktemp("keyed") / "data", extra_args=["--host", "0.0.0.0"],
                           env={"LLMLENS_API_KEY": API_KEY}).start()
    yield server
    server.kill()


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key-0123456789", f"Basic {API_KEY}", API_KEY])
def test_api_key_is_required_on_otlp_and_api(keyed_server: ServerProcess, authorization: str | None) -> None:
    """With a key: OTLP/HTTP and the API answer 401 without the right bearer token, and store nothing."""
    headers = {"authorization": authorization} if authorization else {}
    request, trace_id = batch("unauthorised")
    assert post(keyed_server.url, "traces", request, headers=headers).status_code == 401
    for path in ("/api/v1/status", "/api/v1/traces", f"/api/v1/traces/{trace_id}", "/api/v1/llm/stats",
                 "/api/v1/logs", "/api/v1/metrics", "/openapi.json"):
        answer = httpx.get(keyed_server.url + path, headers=headers, timeout=30)
        assert answer.status_code == 401, path
        assert answer.json()["error"]["code"] == "unauthorized"
    good = {"authorization": f"Bearer {API_KEY}"}
    assert httpx.get(f"{keyed_server.url}/api/v1/traces/{trace_id}", headers=good, timeout=30).status_code == 404


def test_api_key_accepted_as_bearer_token(keyed_server: ServerProcess) -> None:
    """With a key: the bearer token opens OTLP/HTTP, OTLP/gRPC and the API; health probes stay open."""
    good = {"authorization": f"Bearer {API_KEY}"}
    request, trace_id = batch("authorised")
    assert post(keyed_server.url, "traces", request, headers=good).status_code == 200
    with grpc.insecure_channel(keyed_server.grpc_target) as channel:
        grpc_request, grpc_trace = batch("authorised-grpc")
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(
            grpc_request, metadata=[("authorization", f"Bearer {API_KEY}")], timeout=30)
    for tid in (trace_id, grpc_trace):
        assert httpx.get(f"{keyed_server.url}/api/v1/traces/{tid}", headers=good, timeout=30).status_code == 200
    assert httpx.get(f"{keyed_server.url}/healthz", timeout=30).status_code == 200


@pytest.mark.parametrize("metadata", [None, [("authorization", "Bearer wrong-key-0123456789")]])
def test_grpc_without_the_key_is_unauthenticated(keyed_server: ServerProcess, metadata: list | None) -> None:
    """With a key: a gRPC export without the right bearer token is UNAUTHENTICATED."""
    with grpc.insecure_channel(keyed_server.grpc_target) as channel:
        request, _ = batch("unauthenticated-grpc")
        with pytest.raises(grpc.RpcError) as caught:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, metadata=metadata, timeout=30)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
