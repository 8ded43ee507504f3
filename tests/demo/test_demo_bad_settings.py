"""Bad settings give one clear message and a non-zero exit, and leave no process running."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmlens.demo.settings import free_port
from tests.demo.conftest import new_marker_env, wait_until_no_marked_processes


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _run(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    marker, env = new_marker_env()
    result = subprocess.run(
        [sys.executable, "-m", "llmlens.demo", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert wait_until_no_marked_processes(marker) == [], "the demo left processes behind"
    return result


def test_server_port_taken(taken_port: int, tmp_path: Path) -> None:
    result = _run("--base-port", str(taken_port), "--data-dir", str(tmp_path), "--duration", "5")
    assert result.returncode == 2
    assert f"port {taken_port} on 127.0.0.1 (needed for llmlens server" in result.stderr
    assert "already in use" in result.stderr
    assert "--ports auto" in result.stderr


def test_later_service_port_taken_is_found_before_anything_starts(taken_port: int, tmp_path: Path) -> None:
    # With --base-port N the chatbot gets N+2; make N+2 the taken port.
    result = _run("--base-port", str(taken_port - 2), "--data-dir", str(tmp_path), "--duration", "5")
    assert result.returncode == 2
    assert f"port {taken_port} on 127.0.0.1 (needed for RAG chatbot) is already in use" in result.stderr
    assert not (tmp_path / "logs").exists()  # nothing was started


def test_unreachable_llm(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = _run("--ports", "auto", "--llm-base-url", url, "--data-dir", str(tmp_path), "--duration", "5")
    assert result.returncode == 2
    assert f"cannot reach the LLM endpoint at {url}" in result.stderr


def test_unknown_scenario(tmp_path: Path) -> None:
    result = _run("--ports", "auto", "--scenarios", "simple,stampede", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "unknown scenario 'stampede'" in result.stderr


def test_service_that_fails_to_start_is_named_with_its_log(tmp_path: Path) -> None:
    (tmp_path / "store").write_text("a file where the server wants its data folder")
    result = _run("--ports", "auto", "--data-dir", str(tmp_path), "--duration", "5")
    assert result.returncode == 1
    assert "error: llmlens server exited with code" in result.stderr
    assert "before it was ready" in result.stderr
    assert "server.log" in result.stderr


def test_chatbot_alone_with_unreachable_llm() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = _run("chatbot", "--port", str(free_port()), "--llm-base-url", url)
    assert result.returncode == 1
    assert f"cannot reach the LLM endpoint at {url}" in result.stderr


def test_retriever_alone_on_a_taken_port(taken_port: int) -> None:
    result = _run("retriever", "--port", str(taken_port))
    assert result.returncode == 2
    assert f"port {taken_port} on 127.0.0.1 is already in use" in result.stderr


def test_ctrl_c_during_start_up_stops_what_was_started(tmp_path: Path) -> None:
    marker, env = new_marker_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmlens.demo", "--ports", "auto", "--data-dir", str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server_log = tmp_path / "logs" / "server.log"
    deadline = time.monotonic() + 60
    while not server_log.exists():  # the server process has been started
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "stopping llmlens server" in output
    assert wait_until_no_marked_processes(marker) == []
