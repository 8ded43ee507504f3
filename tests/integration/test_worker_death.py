"""A dead ingest worker (SIGKILL, as the OOM killer sends) while exports are being decoded: the
exports it failed are retried once on a new pool; an export whose retry dies too gets 503 with
Retry-After, never a 400 that would make clients drop it; the death is logged; nothing acknowledged
is lost and the server keeps serving."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.otlp_requests import PROTOBUF, error_status, make_span, trace_request
from tests.server_process import ServerProcess

SPANS_PER_EXPORT = 4000  # ~2.5 MB, long enough to decode (tenths of a second) to be killed mid-way


def worker_pids(server: ServerProcess) -> set[int]:
    """The server's ingest worker processes (multiprocessing spawn children, not its resource tracker)."""
    assert server.proc is not None
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == server.proc.pid and b"spawn_main" in cmdline:
            found.add(int(entry.name))
    return found


def wait_for_workers(server: ServerProcess, timeout: float = 60.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = worker_pids(server)
        if pids:
            return pids
        time.sleep(0.1)
    raise AssertionError("the server has no ingest worker processes")


def export_body(tag: str) -> tuple[bytes, str]:
    trace_id = os.urandom(16)
    spans = [make_span(tag, trace_id=trace_id, attrs={"i": i, "text": "t" * 400}) for i in range(SPANS_PER_EXPORT)]
    return trace_request(spans, service="worker-death").SerializeToString(), trace_id.hex()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "data", extra_args=["--ingest-workers", "2"]).start()
    # A first export makes the pool start its processes.
    assert httpx.post(f"{server.url}/v1/traces", content=export_body("warm-up")[0],
                      headers={"content-type": PROTOBUF}, timeout=120).status_code == 200
    yield server
    server.terminate()


def send_concurrently(server: ServerProcess, count: int, tag: str) -> tuple[list[threading.Thread], list, list[str]]:
    """Start `count` exports at once: their threads, their answers (status, Retry-After, message, answered at)
    as they arrive, and their trace ids."""
    bodies = [export_body(tag) for _ in range(count)]
    answers: list = [None] * count

    def send(i: int) -> None:
        answer = httpx.post(f"{server.url}/v1/traces", content=bodies[i][0], headers={"content-type": PROTOBUF},
                            timeout=120)
        message = error_status(answer).message if answer.status_code != 200 else ""
        answers[i] = (answer.status_code, answer.headers.get("retry-after"), message, time.monotonic())

    threads = [threading.Thread(target=send, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads, answers, [trace_id for _, trace_id in bodies]


def stored_spans(server: ServerProcess, trace_id: str) -> int:
    answer = server.get(f"/api/v1/traces/{trace_id}")
    return len(answer.json()["spans"]) if answer.status_code == 200 else 0


@pytest.mark.slow
def test_a_worker_killed_mid_decode_costs_no_export(server: ServerProcess) -> None:
    """SIGKILL one worker while 6 exports are being decoded: every export is still acknowledged (retried
    on the new pool) and stored whole, the log names the dead worker, and new workers serve."""
    before = wait_for_workers(server)
    threads, answers, trace_ids = send_concurrently(server, 6, "one-kill")
    time.sleep(0.4)  # the bodies are uploaded (~15 MB on loopback) and being decoded
    victim = min(before)
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    for thread in threads:
        thread.join(120)

    assert all(answer is not None for answer in answers)
    assert [status for status, *_ in answers] == [200] * 6, answers
    assert sum(answered_at > killed_at for *_, answered_at in answers) >= 1, "every export ended before the kill"
    for trace_id in trace_ids:
        assert stored_spans(server, trace_id) == SPANS_PER_EXPORT
    log = server.log()
    # The pool may reap the worker before its exit code is read: then the log says "exit code unknown".
    assert "ingest worker process died" in log, log[-2000:]
    assert f"pid {victim} exit code -9" in log or "exit code unknown" in log, log[-2000:]
    after = wait_for_workers(server)
    assert victim not in after and after != before
    assert httpx.post(f"{server.url}/v1/traces", content=trace_request([make_span("after")]).SerializeToString(),
                      headers={"content-type": PROTOBUF}, timeout=60).status_code == 200


@pytest.mark.slow
def test_workers_killed_again_and_again_answer_503_never_400(server: ServerProcess) -> None:
    """Every worker killed every 0.3 s for 8 s while exports keep coming: each export gets 200 or 503 with
    Retry-After (never a 400 or 500), every acknowledged export is stored whole, the deaths are logged, and
    once the killing stops the server takes exports again."""
    stop = threading.Event()

    def kill_workers() -> None:
        while not stop.is_set():
            for pid in worker_pids(server):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            stop.wait(0.3)

    killer = threading.Thread(target=kill_workers)
    killer.start()
    deadline = time.monotonic() + 8
    results: list = []
    ids: list[str] = []
    while time.monotonic() < deadline:
        threads, answers, trace_ids = send_concurrently(server, 4, "many-kills")
        for thread in threads:
            thread.join(120)
        results += answers
        ids += trace_ids
    stop.set()
    killer.join()

    statuses = [status for status, *_ in results]
    assert set(statuses) <= {200, 503}, results
    refused = [answer for answer in results if answer[0] == 503]
    assert refused, "no export was refused: the workers were never killed twice in a row under an export"
    for _, retry_after, message, _ in refused:
        assert retry_after and int(retry_after) >= 1
        assert "died" in message and "retry" in message, message
    for (status, *_), trace_id in zip(results, ids, strict=True):
        if status == 200:
            assert stored_spans(server, trace_id) == SPANS_PER_EXPORT
    log = server.log()
    assert "ingest worker process died" in log and "answered 503" in log, log[-2000:]
    body, trace_id = export_body("after-the-killing")
    assert httpx.post(f"{server.url}/v1/traces", content=body, headers={"content-type": PROTOBUF},
                      timeout=120).status_code == 200
    assert stored_spans(server, trace_id) == SPANS_PER_EXPORT
