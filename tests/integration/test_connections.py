"""Clients that hold connections instead of sending requests, against a real server: slow headers
(slowloris), endless headers, slow bodies, a slow upload during SIGTERM; and the API key's scheme
in any case on both transports."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from llmlens.server.connections import HEAD_TIMEOUT_S
from llmlens.server.receive.http_body import BODY_TIMEOUT_S
from llmlens.server.run import MAX_CONNECTIONS
from tests.integration.otlp_requests import PROTOBUF, make_span, trace_request
from tests.server_process import ServerProcess

API_KEY = "connections-test-key-0123456789"


@pytest.fixture(scope="module")
def server(llmlens_server: ServerProcess) -> ServerProcess:
    return llmlens_server


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.http_port), timeout=5)


def read_answer(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (b"" when it closes at once)."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return received


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server has closed (or reset) the connection; False if it is still open."""
    sock.setblocking(False)
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def good_export(server: ServerProcess, name: str = "still-serving") -> int:
    body = trace_request([make_span(name)]).SerializeToString()
    return httpx.post(f"{server.url}/v1/traces", content=body, headers={"content-type": PROTOBUF},
                      timeout=30).status_code


@pytest.mark.slow
def test_slowloris_connections_are_closed_after_the_head_timeout_and_capped(server: ServerProcess) -> None:
    """600 connections sending their headers a byte at a time: past MAX_CONNECTIONS a new request gets 503
    at once (not a queue without end); within HEAD_TIMEOUT_S (+ slack) the server closes every one of them,
    and then it serves again."""
    assert MAX_CONNECTIONS < 600
    started = time.monotonic()
    slow = []
    for _ in range(600):
        sock = connect(server)
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        slow.append(sock)
    for _ in range(30):  # until the server has accepted enough of them
        answer = httpx.get(f"{server.url}/healthz", timeout=10)
        if answer.status_code == 503:
            break
        time.sleep(0.1)
    assert answer.status_code == 503, answer.text
    open_ones = list(slow)
    while open_ones and time.monotonic() - started < HEAD_TIMEOUT_S + 15:
        for sock in open_ones:
            with contextlib.suppress(OSError):  # closed by the server meanwhile
                sock.send(b"a")
        time.sleep(1.0)
        open_ones = [sock for sock in open_ones if not closed_by_server(sock)]
    elapsed = time.monotonic() - started
    for sock in slow:
        sock.close()
    assert not open_ones, f"{len(open_ones)} slow connections still open after {elapsed:.0f} s"
    assert elapsed >= HEAD_TIMEOUT_S - 1, f"closed after {elapsed:.1f} s, before the head timeout"
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    assert good_export(server) == 200


def test_endless_headers_are_refused(server: ServerProcess) -> None:
    """A header of 1 MB: 400 and the connection closed, after at most the head limit has been read."""
    sock = connect(server)
    sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
    with contextlib.suppress(OSError):  # the server closed the connection while we wrote: what we want
        for _ in range(16):
            sock.sendall(b"b" * 65536)
        sock.sendall(b"\r\n\r\n")
    answer = read_answer(sock, timeout=10)
    sock.close()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert good_export(server) == 200


@pytest.mark.slow
def test_a_body_that_stalls_or_trickles_is_answered_408(server: ServerProcess) -> None:
    """A body that stops after 10 of its 100,000 bytes, and one that trickles a byte a second: both get
    408 within BODY_TIMEOUT_S (+ slack); exports in the meantime are served."""
    def start(content_length: int) -> socket.socket:
        sock = connect(server)
        sock.sendall(f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {PROTOBUF}\r\n"
                     f"Content-Length: {content_length}\r\n\r\n".encode() + b"\x00" * 10)
        return sock

    stalled, trickling = start(100_000), start(100_000)
    answers: dict[str, bytes] = {}
    reader = threading.Thread(target=lambda: answers.setdefault("stalled", read_answer(stalled, BODY_TIMEOUT_S + 15)))
    reader.start()
    started = time.monotonic()
    assert good_export(server, "during-slow-bodies") == 200
    trickling.settimeout(1.0)
    while time.monotonic() - started < BODY_TIMEOUT_S + 15:
        try:
            trickling.send(b"\x00")
            trickling.recv(1, socket.MSG_PEEK)  # returns once the server answered or closed
            break
        except TimeoutError:
            continue
    answers["trickling"] = read_answer(trickling, 5)
    reader.join()
    elapsed = time.monotonic() - started
    for name, answer in answers.items():
        assert answer.startswith(b"HTTP/1.1 408"), (name, answer[:300])
        assert b"did not arrive within" in answer
    assert BODY_TIMEOUT_S - 1 <= elapsed <= BODY_TIMEOUT_S + 15
    assert good_export(server) == 200


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "data").start()
    yield server
    server.kill()


def test_sigterm_answers_a_slow_upload_503_and_exits_at_once(own_server: ServerProcess) -> None:
    """SIGTERM while a client uploads slowly: the upload gets 503 with Retry-After within seconds (not a
    500 after the 30 s grace), an export acknowledged just before is kept, and the server exits 0."""
    server = own_server
    assert good_export(server, "before-sigterm") == 200
    sock = connect(server)
    sock.sendall(f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {PROTOBUF}\r\n"
                 f"Content-Length: {10_000_000}\r\n\r\n".encode() + b"\x00" * 1000)
    time.sleep(0.5)
    assert server.proc is not None
    started = time.monotonic()
    server.proc.send_signal(15)
    answer = read_answer(sock, timeout=20)
    answered_after = time.monotonic() - started
    sock.close()
    code = server.proc.wait(30)
    exited_after = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 503"), answer[:300]
    assert b"retry-after: 5" in answer.lower() and b"shutting down" in answer
    assert answered_after < 5 and exited_after < 10, (answered_after, exited_after)
    assert code == 0
    restarted = ServerProcess(server.data_dir).start()
    try:
        listed = restarted.get("/api/v1/traces", name="before-sigterm", start="-1h").json()["items"]
        assert len(listed) == 1
    finally:
        restarted.terminate()


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("keyed") / "data", env={"LLMLENS_API_KEY": API_KEY}).start()
    yield server
    server.terminate()


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_bearer_scheme_is_read_in_any_case_on_http_and_grpc(keyed_server: ServerProcess, scheme: str) -> None:
    """'Bearer', 'bearer' and 'BEARER' with the right key are accepted over HTTP and gRPC alike."""
    body = trace_request([make_span(f"scheme-{scheme}")])
    answer = httpx.post(f"{keyed_server.url}/v1/traces", content=body.SerializeToString(),
                        headers={"content-type": PROTOBUF, "authorization": f"{scheme} {API_KEY}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    with grpc.insecure_channel(keyed_server.grpc_target) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        stub.Export(body, metadata=[("authorization", f"{scheme} {API_KEY}")], timeout=30)


@pytest.mark.parametrize("authorization", [None, f"Basic {API_KEY}", "bearer wrong-key-0123456789", f"bearer{API_KEY}",
                                           f"{API_KEY}"])
def test_a_wrong_or_missing_key_is_refused_on_both_transports(keyed_server: ServerProcess,
                                                              authorization: str | None) -> None:
    """No key, another scheme, a wrong key, or the key without a scheme: 401 on HTTP, UNAUTHENTICATED on gRPC."""
    body = trace_request([make_span("refused")])
    headers = {"content-type": PROTOBUF, **({"authorization": authorization} if authorization else {})}
    answer = httpx.post(f"{keyed_server.url}/v1/traces", content=body.SerializeToString(), headers=headers,
                        timeout=30)
    assert answer.status_code == 401
    with grpc.insecure_channel(keyed_server.grpc_target) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Export(body, metadata=[("authorization", authorization)] if authorization else None, timeout=30)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_random_bytes_instead_of_http_are_refused(server: ServerProcess) -> None:
    """Bytes that are not HTTP at all: the connection is closed with a 400, and the server serves on."""
    sock = connect(server)
    sock.sendall(os.urandom(4096))
    answer = read_answer(sock, timeout=10)
    sock.close()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert good_export(server) == 200
