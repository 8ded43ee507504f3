"""Fixtures for the SDK tests: the demo mock LLM as a real process, a real OTLP receiver, fresh SDK state."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import llmlens
from tests.sdk.otlp_receiver import OtlpReceiver, start_receiver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port}")


@pytest.fixture(scope="session")
def mock_llm_url() -> Iterator[str]:
    """The demo's mock LLM as a real process (5 ms to first token, 1 ms per token, "timeouts" hang 3 s)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llmlens.demo.mock_llm", "--host", "127.0.0.1", "--port",
                             str(port), "--ttft-ms", "5", "--ms-per-token", "1", "--timeout-s", "3"])
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a hanging "timeout" request can hold up uvicorn's graceful exit
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def receiver_session() -> Iterator[OtlpReceiver]:
    receiver = start_receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture
def receiver(receiver_session: OtlpReceiver) -> OtlpReceiver:
    receiver_session.clear()
    return receiver_session


@pytest.fixture
def sdk(receiver: OtlpReceiver) -> Iterator[Callable[..., None]]:
    """init() against the test receiver (call it with any init() keyword); shutdown() afterwards."""

    def start(**kwargs: Any) -> None:
        kwargs.setdefault("service_name", "sdk-test")
        kwargs.setdefault("endpoint", receiver.endpoint)
        llmlens.init(**kwargs)

    yield start
    llmlens.shutdown()


@pytest.fixture
def client(mock_llm_url: str) -> Any:
    import openai

    return openai.OpenAI(base_url=mock_llm_url, api_key="test-key", max_retries=0)


@pytest.fixture
def async_client(mock_llm_url: str) -> Any:
    import openai

    return openai.AsyncOpenAI(base_url=mock_llm_url, api_key="test-key", max_retries=0)
