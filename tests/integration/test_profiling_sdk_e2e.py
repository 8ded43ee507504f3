"""The SDK's profiler against a real server: a process burning CPU in a known function inside a span
pushes its profiles to the server's /ingest, and the flame graph of that span shows the function."""

from __future__ import annotations

import time

from tests.sdk.test_profiling import run_app
from tests.server_process import ServerProcess

SERVICE = "profiled-app"


def flamegraph(server: ServerProcess, **params) -> dict:
    answer = server.get("/api/v1/profiles/flamegraph", service=SERVICE, start="-1h", end="now", **params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def heaviest(node: dict, function: str) -> int:
    """The largest value of a node of `function` anywhere in the tree (0 when absent)."""
    own = node["value"] if node["name"].startswith(f"{function} (") else 0
    return max([own] + [heaviest(child, function) for child in node.get("children", [])])


def test_the_flame_graph_of_a_span_shows_the_function_that_burned_its_cpu(llmlens_server: ServerProcess) -> None:
    result, stderr = run_app(llmlens_server.url, "threads")
    assert "profile export" not in stderr  # every push was accepted
    span = flamegraph(llmlens_server, span_id=result["burn"]["span_id"])
    deadline = time.monotonic() + 30
    while span["value"] == 0 and time.monotonic() < deadline:  # acknowledged pushes are stored; reads may lag
        time.sleep(0.5)
        span = flamegraph(llmlens_server, span_id=result["burn"]["span_id"])
    assert span["value"] >= 20
    assert heaviest(span, "burn_in_span") >= 0.9 * span["value"]
    assert heaviest(span, "work") >= 0.9 * span["value"]
    assert flamegraph(llmlens_server, trace_id=result["burn"]["trace_id"])["value"] == span["value"]
    assert flamegraph(llmlens_server, span_name="burn")["value"] >= span["value"]
    # On-CPU: the thread that only waited has no samples at all.
    assert flamegraph(llmlens_server, thread="idle-waiter")["value"] == 0
    assert flamegraph(llmlens_server, thread="MainThread")["value"] >= span["value"]
