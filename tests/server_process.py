"""A real `llmlens serve` process on free loopback ports, for integration tests.

Tests talk to it over HTTP/gRPC exactly as users' apps do. Each instance has its own data
directory (chDB allows one process per directory).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

CHECKOUT_SRC = Path(__file__).resolve().parents[1] / "src"


def check_installed_from_this_checkout() -> None:
    """Fail unless `import llmlens` (what server processes run) is this checkout's source.

    An editable install of another clone silently tests and benchmarks that clone's code.
    """
    import llmlens

    installed = Path(llmlens.__file__).resolve().parent
    if installed != CHECKOUT_SRC / "llmlens":
        raise RuntimeError(f"llmlens is imported from {installed}, not from this checkout ({CHECKOUT_SRC}): "
                           "run `pip install -e '.[all]'` here first")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, data_dir: Path, *, extra_args: list[str] | None = None, env: dict[str, str] | None = None,
                 http_port: int | None = None, grpc_port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.http_port = http_port or free_port()
        self.grpc_port = grpc_port or free_port()
        self.extra_args = extra_args or []
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        check_installed_from_this_checkout()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 -- kept open for the process's life
        # The OTLP fixtures keep their capture timestamps: unless a test sets a retention, a long one keeps
        # them from being refused as older than the default 30 days once the fixtures age.
        retention = [] if "--retention-days" in self.extra_args or "LLMLENS_RETENTION_DAYS" in self.env \
            else ["--retention-days", "3650"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmlens.cli", "serve", "--data-dir", str(self.data_dir),
             "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port), "--log-level", "warning",
             *retention, *self.extra_args],
            stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait: the server finishes what it accepted, then exits."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._log.close()
        return code

    def kill(self) -> None:
        """SIGKILL: no chance to flush anything."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        if hasattr(self, "_log"):
            self._log.close()

    def get(self, path: str, **params) -> httpx.Response:
        return httpx.get(self.url + path, params=params, timeout=30.0)

    def status(self) -> dict:
        return self.get("/api/v1/status").json()

    def wait_for_spans(self, count: int, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        status = self.status()
        while status["spans"] < count and time.monotonic() < deadline:
            time.sleep(0.1)
            status = self.status()
        return status
