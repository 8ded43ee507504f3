"""The demo's mock LLM, retriever and RAG chatbot as real processes reporting to a test server.

For tests that need real traces, scores and OTLP metrics of the kind the demo produces, sent by the
llmlens SDK and the real `openai` client, with requests the test chooses (instead of the demo's
random traffic).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.server_process import ServerProcess, free_port


@dataclass
class DemoServices:
    chatbot_url: str
    llm_url: str
    retriever_url: str

    def chat(self, session_id: str, message: str, **extra: Any) -> httpx.Response:
        """POST /v1/chat, as the demo's traffic does (one trace per request)."""
        return httpx.post(f"{self.chatbot_url}/v1/chat", json={"session_id": session_id, "user_message": message,
                                                               **extra}, timeout=60)


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout_s} s:\n{log.read_text()[-3000:]}")


@contextmanager
def demo_services(server: ServerProcess, log_dir: Path) -> Iterator[DemoServices]:
    """Start the three services (each sends its telemetry to `server`); stop them on exit."""
    ports = {name: free_port() for name in ("llm", "retriever", "chatbot")}
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "LLMLENS_DEMO_OTLP_ENDPOINT": server.url,
           "OTEL_EXPORTER_OTLP_ENDPOINT": server.url, "LLMLENS_DEMO_LLM_API_KEY": "demo-key",
           # Spans and metrics reach the server within the test's patience.
           "OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_METRIC_EXPORT_INTERVAL": "1000",
           # Prompts and responses recorded (off by default), as a team comparing them would set.
           "LLMLENS_CAPTURE_CONTENT": "true"}
    commands = {
        "llm": ([sys.executable, "-m", "llmlens.demo", "llm", "--port", str(ports["llm"]), "--seed", "7"],
                f"{url['llm']}/v1/models"),
        "retriever": ([sys.executable, "-m", "llmlens.demo.retriever", "--port", str(ports["retriever"]),
                       "--otlp-endpoint", server.url], f"{url['retriever']}/healthz"),
        "chatbot": ([sys.executable, "-m", "llmlens.demo.chatbot", "--port", str(ports["chatbot"]),
                     "--otlp-endpoint", server.url, "--retriever-url", url["retriever"],
                     "--llm-base-url", f"{url['llm']}/v1"], f"{url['chatbot']}/healthz"),
    }
    started: list[subprocess.Popen] = []
    try:
        for name, (argv, ready_url) in commands.items():
            log = log_dir / f"{name}.log"
            with log.open("ab") as out:
                proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
            started.append(proc)
            _wait_ready(ready_url, proc, log)
        yield DemoServices(url["chatbot"], url["llm"], url["retriever"])
    finally:
        for proc in reversed(started):
            if proc.poll() is None:
                proc.terminate()
        for proc in started:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
