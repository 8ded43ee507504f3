"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server_process import ServerProcess, check_installed_from_this_checkout

check_installed_from_this_checkout()  # before any test imports the code it is meant to test

# Real OTLP bodies exported by four LLM instrumentors (see fixtures/otlp/README.md).
CORPUS = Path(__file__).resolve().parent / "fixtures" / "otlp"


@pytest.fixture(scope="module")
def llmlens_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real `llmlens serve` on free loopback ports, shared by the tests of one module."""
    server = ServerProcess(tmp_path_factory.mktemp("store") / "data").start()
    yield server
    if server.proc and server.proc.poll() is None:
        server.terminate()
