"""`llmlens demo`: start the server, mock LLM, retriever, chatbot and traffic; stop them all at the end.

Start order follows dependencies (server first so no early telemetry is lost, the chatbot after
what it calls); stop order is the reverse, with the server last so the others can flush to it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console
from rich.table import Table

from llmlens.demo.chatbot import check_llm_reachable
from llmlens.demo.processes import ManagedProcess, ServiceFailed, ServiceSpec
from llmlens.demo.settings import (
    DEFAULT_SERVER_HTTP_PORT,
    ENV_LLM_API_KEY,
    ENV_OTLP_ENDPOINT,
    LOOPBACK,
    DemoSettings,
    PortInUseError,
    check_ports_free,
)

SERVER_READY_TIMEOUT_S = 90.0  # the embedded database's first start creates its schema
SERVICE_READY_TIMEOUT_S = 45.0
STOP_GRACE_S = 10.0
EXIT_OK, EXIT_FAILED, EXIT_BAD_SETTINGS = 0, 1, 2
SERVER_NAME = "llmlens server"
STATE_FILE_NAME = "demo.json"  # in the data dir while the demo runs: the addresses, for scripts


def _module(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"llmlens.demo.{name}", *args]


def _cli(*args: str) -> list[str]:
    # The same interpreter as ours rather than an installed script, so the server runs even when
    # `llmlens` is not on PATH.
    return [sys.executable, "-m", "llmlens.cli", *args]


def service_specs(settings: DemoSettings) -> dict[str, ServiceSpec]:
    """What to run, keyed by role, in start order."""
    s, p, logs = settings, settings.ports, settings.log_dir
    otlp = ["--otlp-endpoint", s.otlp_endpoint]
    specs = {
        "server": ServiceSpec(
            SERVER_NAME,
            _cli("serve", "--data-dir", str(s.store_dir), "--host", s.host,
                 "--http-port", str(p.server_http), "--grpc-port", str(p.server_grpc)),
            ready_url=f"{s.url(p.server_http)}/readyz",
            log_file=logs / "server.log",
        ),
    }  # fmt: skip
    if s.external_llm is None:
        specs["llm"] = ServiceSpec(
            "mock LLM",
            # Through `llmlens demo llm`, which adds telemetry to the mock so it joins the traces.
            [
                sys.executable,
                "-m",
                "llmlens.demo",
                "llm",
                "--host",
                s.host,
                "--port",
                str(p.llm),
                "--error-rate",
                str(s.error_rate),
            ],
            ready_url=f"{s.url(p.llm)}/v1/models",
            log_file=logs / "mock_llm.log",
        )
    specs["retriever"] = ServiceSpec(
        "retriever",
        _module("retriever", "--host", s.host, "--port", str(p.retriever), *otlp),
        ready_url=f"{s.url(p.retriever)}/healthz",
        log_file=logs / "retriever.log",
    )
    llm = s.llm
    models = ["--llm-models", ",".join(s.models)] if set(s.models) - {llm.model} else []
    specs["chatbot"] = ServiceSpec(
        "RAG chatbot",
        _module("chatbot", "--host", s.host, "--port", str(p.chatbot), *otlp,
                "--retriever-url", s.url(p.retriever), "--llm-base-url", llm.base_url,
                "--llm-model", llm.model, *models),
        ready_url=f"{s.url(p.chatbot)}/healthz",
        log_file=logs / "chatbot.log",
    )  # fmt: skip
    traffic = [
        "--chatbot-url",
        s.url(p.chatbot),
        *otlp,
        "--rate",
        str(s.rate),
        "--concurrency",
        str(s.concurrency),
    ]
    if s.duration:
        traffic += ["--duration", str(s.duration)]
    if s.scenarios:
        traffic += ["--scenarios", s.scenarios]
    if s.seed is not None:
        traffic += ["--seed", str(s.seed)]
    specs["traffic"] = ServiceSpec("traffic generator", _module("traffic", *traffic))
    return specs


def child_environment(settings: DemoSettings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env[ENV_OTLP_ENDPOINT] = settings.otlp_endpoint
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = (
        settings.otlp_endpoint
    )  # for any child that reads only the OTel variable
    # The key travels by environment, never argv (visible in `ps`); with the mock, its dummy key, so
    # a user's real OPENAI_API_KEY is never sent to it.
    env[ENV_LLM_API_KEY] = settings.llm.api_key
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class Demo:
    """Runs one demo: start in order, print addresses, wait for the end, stop in reverse order."""

    def __init__(self, settings: DemoSettings, console: Console | None = None) -> None:
        self.settings = settings
        self.console = console or Console()
        self.running: dict[str, ManagedProcess] = {}  # by display name, in start order
        self.traffic: ManagedProcess | None = None
        self.stop_requested = threading.Event()

    def run(self) -> int:
        try:
            self._preflight()
        except (PortInUseError, ValueError) as exc:
            self._error(f"{exc}. Choose other ports with --base-port N or --ports auto.")
            return EXIT_BAD_SETTINGS
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._run_started()
        finally:
            self.stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.settings.store_dir.exists():
                self._say(f"The demo's data stays in {self.settings.store_dir}. Open it again with: "
                          f"{self.settings.reopen_command}  (then http://{LOOPBACK}:{DEFAULT_SERVER_HTTP_PORT}/)")

    def _preflight(self) -> None:
        check_ports_free(self.settings.host, self._ports_to_bind())
        if self.settings.external_llm and (
            problem := check_llm_reachable(
                self.settings.external_llm.base_url, self.settings.external_llm.api_key
            )
        ):
            raise ValueError(problem)
        try:
            self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"cannot create the log folder {self.settings.log_dir}: {exc.strerror}") from exc

    def _ports_to_bind(self) -> dict[str, int]:
        roles = self.settings.ports.by_role()
        if self.settings.external_llm is not None:
            roles.pop("mock LLM")
        return roles

    def _run_started(self) -> int:
        specs = service_specs(self.settings)
        env = child_environment(self.settings)
        try:
            for group in (["server"], ["llm", "retriever"], ["chatbot"]):
                self._start_group([specs[role] for role in group if role in specs], env)
                if self.stop_requested.is_set():
                    return EXIT_OK
        except ServiceFailed as exc:
            self._error(str(exc))
            return EXIT_FAILED
        self.console.print(self._address_table())
        self._say(f"Data: {self.settings.store_dir}; after the demo, open it again with: "
                  f"{self.settings.reopen_command}")
        self._write_state_file()
        self.traffic = ManagedProcess(specs["traffic"], env)
        self.running[self.traffic.name] = self.traffic
        return self._supervise(self.traffic)

    def _start_group(self, specs: list[ServiceSpec], env: Mapping[str, str]) -> None:
        for spec in specs:
            self.console.print(f"starting {spec.name} …")
            self.running[spec.name] = ManagedProcess(spec, env)
        for spec in specs:
            timeout = SERVER_READY_TIMEOUT_S if spec.name == SERVER_NAME else SERVICE_READY_TIMEOUT_S
            self.running[spec.name].wait_ready(timeout, cancelled=self.stop_requested)

    def _supervise(self, traffic: ManagedProcess) -> int:
        """Wait for the traffic to finish, Ctrl-C, or a service to die."""
        while not self.stop_requested.is_set():
            code = traffic.exit_code()
            if code is not None:
                return (
                    EXIT_OK if code == 0 else self._failed(f"the traffic generator exited with code {code}")
                )
            for name, process in self.running.items():
                if process is not traffic and process.exit_code() is not None:
                    return self._failed(
                        f"{name} exited unexpectedly with code {process.exit_code()}.{process.log_tail()}"
                    )
            time.sleep(0.2)
        return EXIT_OK

    def stop_all(self) -> None:
        """Stop in waves: the traffic (SIGINT, so it prints its summary), then the demo services
        together, then the server last so it receives their final telemetry."""
        self.state_file.unlink(missing_ok=True)
        processes = list(self.running.values())
        self.running.clear()
        server = [p for p in processes if p.name == SERVER_NAME]
        traffic = [p for p in processes if p is self.traffic]
        services = [p for p in processes if p not in server and p not in traffic]
        for wave, first in ((traffic, signal.SIGINT), (services, signal.SIGTERM), (server, signal.SIGTERM)):
            live = [p for p in wave if p.exit_code() is None]
            if live:
                self.console.print(f"stopping {', '.join(p.name for p in live)} …")
            for process in wave:
                process.send_signal(first)
            deadline = time.monotonic() + STOP_GRACE_S
            for process in wave:
                process.finish_stop(deadline)

    @property
    def state_file(self) -> Path:
        return self.settings.data_dir / STATE_FILE_NAME

    def _write_state_file(self) -> None:
        """Addresses for scripts and tests: present exactly while the demo is up."""
        s, p = self.settings, self.settings.ports
        state = {
            "pid": os.getpid(),
            "ui": f"{s.url(p.server_http)}/",
            "server": s.url(p.server_http),
            "otlp_grpc": f"{s.host}:{p.server_grpc}",
            "chatbot": s.url(p.chatbot),
            "retriever": s.url(p.retriever),
            "llm": s.llm.base_url,
            "logs": str(s.log_dir),
        }
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.stop_requested.is_set():  # second Ctrl-C: no more patience
            for process in self.running.values():
                process.send_signal(signal.SIGKILL)
        self.stop_requested.set()

    def _say(self, text: str) -> None:
        # One unwrapped line, no markup: commands and paths must stay copyable as printed.
        self.console.print(text, soft_wrap=True, markup=False, highlight=False)

    def _failed(self, message: str) -> int:
        self._error(message)
        return EXIT_FAILED

    def _error(self, message: str) -> None:
        print(f"error: {message}", file=sys.stderr, flush=True)

    def _address_table(self) -> Table:
        s, p = self.settings, self.settings.ports
        table = Table(title="llmlens demo is running", show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        table.add_row("UI", f"{s.url(p.server_http)}/")
        table.add_row("OTLP", f"HTTP {s.url(p.server_http)}  ·  gRPC {s.host}:{p.server_grpc}")
        table.add_row("RAG chatbot", f"{s.url(p.chatbot)}  (POST /v1/chat, POST /api/chat, GET /metrics)")
        table.add_row("retriever", f"{s.url(p.retriever)}  (POST /search, GET /metrics)")
        llm = s.llm.base_url if s.external_llm else f"{s.url(p.llm)}/v1  (mock, GET /metrics)"
        table.add_row("LLM", llm)
        table.add_row("logs", str(s.log_dir))
        table.add_row("chat", f"llmlens demo chat --chatbot-url {s.url(p.chatbot)}")
        table.add_row("stop", f"Ctrl-C{'' if not s.duration else f' (or wait {s.duration:g} s)'}")
        return table


def run_demo(settings: DemoSettings) -> int:
    return Demo(settings).run()
