"""Trace context and baggage across two real HTTP services (requests -> FastAPI -> httpx -> FastAPI)."""

from __future__ import annotations

import os
import subprocess
import sys

import requests

import llmlens
from tests.sdk.conftest import free_port, wait_for_port

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _service(name: str, port: int, otlp: str, next_url: str | None = None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "tests.sdk.hop_service", "--name", name, "--port", str(port), "--otlp", otlp]
    if next_url:
        cmd += ["--next", next_url]
    return subprocess.Popen(cmd, cwd=REPO)


def test_context_reaches_spans_of_downstream_services(sdk, receiver):
    port_a, port_b = free_port(), free_port()
    b = _service("b", port_b, receiver.endpoint)
    a = _service("a", port_a, receiver.endpoint, f"http://127.0.0.1:{port_b}")
    try:
        wait_for_port(port_b, b)
        wait_for_port(port_a, a)
        sdk(service_name="caller")
        with llmlens.context(user_id="user-42", session_id="sess-1", plan="gold"), \
                llmlens.span("caller request") as root:
            response = requests.get(f"http://127.0.0.1:{port_a}/hop", timeout=30)
            trace_id = format(root.get_span_context().trace_id, "032x")
        assert response.status_code == 200
        seen = response.json()["downstream"]["baggage"]
        assert seen["user.id"] == "user-42" and seen["llmlens.tag.plan"] == "gold"
    finally:
        for proc in (a, b):
            proc.terminate()
            proc.wait(timeout=30)
    llmlens.shutdown()
    assert receiver.wait_for(lambda r: any(s.name == "leaf work" for s in r.spans))
    services = {s.resource["service.name"] for s in receiver.spans if s.trace_id == trace_id}
    assert services == {"caller", "svc-a", "svc-b"}
    leaf = receiver.spans_named("leaf work")[0]
    assert leaf.trace_id == trace_id
    assert leaf.attributes["user.id"] == "user-42"
    assert leaf.attributes["session.id"] == "sess-1"
    assert leaf.attributes["llmlens.tag.plan"] == "gold"
    server_spans_b = [s for s in receiver.spans if s.resource["service.name"] == "svc-b" and s.kind == 2]
    assert server_spans_b and all(s.attributes.get("user.id") == "user-42" for s in server_spans_b)
