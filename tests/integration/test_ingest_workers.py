"""Ingest worker processes: they do the decoding, survive bad bodies, and die with the server."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

from tests.conftest import CORPUS
from tests.server_process import ServerProcess

PB = {"content-type": "application/x-protobuf"}


def children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == str(pid):
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_workers_die_with_a_killed_server(tmp_path):
    """After kill -9 of the server, no ingest worker is left running."""
    # The corpus keeps its capture timestamps; a long retention keeps them from being refused as they age.
    server = ServerProcess(tmp_path / "data", extra_args=["--retention-days", "3650"]).start()
    body = (CORPUS / "openlit" / "chat.traces.pb").read_bytes()
    assert httpx.post(server.url + "/v1/traces", content=body, headers=PB, timeout=30).status_code == 200
    workers = children(server.proc.pid)
    assert workers, "the export was decoded in worker processes"
    server.kill()
    deadline = time.monotonic() + 10
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(w) for w in workers)


def test_in_process_decoding_gives_the_same_answers(tmp_path):
    """--ingest-workers 0 decodes in the server process and stores the same facts."""
    server = ServerProcess(tmp_path / "data", extra_args=["--ingest-workers", "0", "--retention-days", "3650"]).start()
    try:
        body = (CORPUS / "phoenix" / "chat.traces.pb").read_bytes()
        assert httpx.post(server.url + "/v1/traces", content=body, headers=PB, timeout=30).status_code == 200
        assert not children(server.proc.pid), "no worker process was started"
        items = server.get("/api/v1/traces", start="-300d").json()["items"]
        assert len(items) == 1 and items[0]["input_tokens"] > 0 and items[0]["cost_usd"] > 0
    finally:
        server.terminate()
