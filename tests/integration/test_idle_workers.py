"""Ingest workers start with the first export, exit after --ingest-workers-idle-s without exports
(their memory goes back to the machine), and start again with the next export, which is stored."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.conftest import CORPUS
from tests.integration.test_ingest_workers import alive, children
from tests.server_process import ServerProcess

PB = {"content-type": "application/x-protobuf"}


def workers(pid: int) -> set[int]:
    """The server's ingest worker processes (not multiprocessing's resource tracker)."""
    found = set()
    for child in children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline and alive(child):
            found.add(child)
    return found


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
    return condition()


def test_idle_workers_exit_and_the_next_export_starts_them_again(tmp_path):
    server = ServerProcess(tmp_path / "data", extra_args=["--ingest-workers", "2", "--ingest-workers-idle-s", "2"]).start()
    try:
        assert not children(server.proc.pid), "no process before the first export, not even the resource tracker"
        first = (CORPUS / "openlit" / "chat.traces.pb").read_bytes()
        assert httpx.post(server.url + "/v1/traces", content=first, headers=PB, timeout=60).status_code == 200
        before = workers(server.proc.pid)
        assert before, "the export was decoded in a worker process"
        spans = server.status()["spans"]
        assert spans > 0

        assert wait_for(lambda: not workers(server.proc.pid), timeout=30), "idle workers exited"
        assert not any(alive(pid) for pid in before)

        second = (CORPUS / "phoenix" / "chat.traces.pb").read_bytes()
        assert httpx.post(server.url + "/v1/traces", content=second, headers=PB, timeout=60).status_code == 200
        after = workers(server.proc.pid)
        assert after and not after & before, "new workers decoded the next export"
        assert server.status()["spans"] > spans, "the export decoded by the new workers was stored"
    finally:
        assert server.terminate() == 0


def test_workers_are_kept_with_idle_s_0(tmp_path):
    server = ServerProcess(tmp_path / "data", extra_args=["--ingest-workers", "1", "--ingest-workers-idle-s", "0"]).start()
    try:
        body = (CORPUS / "openlit" / "chat.traces.pb").read_bytes()
        assert httpx.post(server.url + "/v1/traces", content=body, headers=PB, timeout=60).status_code == 200
        before = workers(server.proc.pid)
        time.sleep(4)
        assert before and workers(server.proc.pid) == before
    finally:
        assert server.terminate() == 0
