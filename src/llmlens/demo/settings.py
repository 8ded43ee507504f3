"""Settings of the demo services: ports, URLs and the LLM endpoint, resolved once and passed down.

Precedence is always: command-line flag, then environment variable, then default.

Environment variables:
  LLMLENS_DEMO_LLM_BASE_URL  OpenAI-compatible base URL for the chatbot (falls back to OPENAI_BASE_URL
                             when the chatbot runs alone; `llmlens demo` ignores OPENAI_BASE_URL so a
                             shell configured for OpenAI never sends demo traffic there by surprise)
  LLMLENS_DEMO_LLM_API_KEY   API key for that endpoint (falls back to OPENAI_API_KEY)
  LLMLENS_DEMO_LLM_MODEL     model name sent to the endpoint
  LLMLENS_DEMO_OTLP_ENDPOINT where every demo service sends telemetry (OTLP/HTTP base URL)
"""

from __future__ import annotations

import os
import shlex
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from llmlens.demo.apps import DEFAULT_APP, DEMO_MODELS

LOOPBACK = "127.0.0.1"
DEFAULT_MODEL = DEFAULT_APP.model
MOCK_API_KEY = "llmlens-demo-key"

# Ports when nothing is chosen: the server keeps the standard OTLP ports so a user's own app can
# send to it unchanged; the demo services sit together in a quiet range.
DEFAULT_SERVER_HTTP_PORT = 4318
DEFAULT_SERVER_GRPC_PORT = 4317
DEFAULT_CHATBOT_PORT = 8700
DEFAULT_RETRIEVER_PORT = 8701
DEFAULT_LLM_PORT = 8702

ENV_LLM_BASE_URL = "LLMLENS_DEMO_LLM_BASE_URL"
ENV_LLM_API_KEY = "LLMLENS_DEMO_LLM_API_KEY"
ENV_LLM_MODEL = "LLMLENS_DEMO_LLM_MODEL"
ENV_OTLP_ENDPOINT = "LLMLENS_DEMO_OTLP_ENDPOINT"


# Traffic scenarios (implemented in scenarios.py; named here so flags can be checked cheaply).
SCENARIO_NAMES = ("simple", "long", "multi_turn", "burst", "error_storm")
# Mix used when no scenario is chosen: mostly ordinary traffic, an occasional storm.
DEFAULT_SCENARIO_WEIGHTS = {"simple": 5.0, "long": 2.0, "multi_turn": 3.0, "burst": 1.0, "error_storm": 0.5}


class PortInUseError(Exception):
    """A port the demo needs is already taken by another process."""

    def __init__(self, role: str, host: str, port: int) -> None:
        super().__init__(f"port {port} on {host} (needed for {role}) is already in use")
        self.role, self.host, self.port = role, host, port


@dataclass(frozen=True)
class LlmEndpoint:
    base_url: str
    api_key: str
    model: str


@dataclass(frozen=True)
class DemoPorts:
    server_http: int
    server_grpc: int
    chatbot: int
    retriever: int
    llm: int

    def by_role(self) -> dict[str, int]:
        return {
            "llmlens server (HTTP, UI, OTLP/HTTP)": self.server_http,
            "llmlens server (OTLP/gRPC)": self.server_grpc,
            "RAG chatbot": self.chatbot,
            "retriever": self.retriever,
            "mock LLM": self.llm,
        }


@dataclass(frozen=True)
class DemoSettings:
    """Everything `llmlens demo` needs to start and drive the whole demo."""

    host: str
    ports: DemoPorts
    data_dir: Path
    duration: float | None
    rate: float
    concurrency: int
    error_rate: float
    scenarios: str | None  # traffic's --scenarios value, already validated; None: the default mix
    seed: int | None = None
    external_llm: LlmEndpoint | None = None  # None: start the mock LLM
    model: str = DEFAULT_MODEL  # the chatbot's default
    models: tuple[str, ...] = DEMO_MODELS  # what requests may ask the chatbot for (the mock answers any)
    log_dir: Path = field(default_factory=lambda: Path("."))

    def url(self, port: int) -> str:
        return f"http://{self.host}:{port}"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "store"

    @property
    def reopen_command(self) -> str:
        """The command that serves this demo's data again once the demo has stopped."""
        return f"llmlens serve --data-dir {shlex.quote(str(self.store_dir))}"

    @property
    def otlp_endpoint(self) -> str:
        return self.url(self.ports.server_http)

    @property
    def llm(self) -> LlmEndpoint:
        if self.external_llm is not None:
            return self.external_llm
        return LlmEndpoint(f"{self.url(self.ports.llm)}/v1", MOCK_API_KEY, self.model)


def default_otlp_endpoint(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get(ENV_OTLP_ENDPOINT) or f"http://{LOOPBACK}:{DEFAULT_SERVER_HTTP_PORT}"


def resolve_llm_endpoint(
    base_url: str | None,
    api_key: str | None,
    model: str | None,
    *,
    default_base_url: str,
    allow_openai_env: bool,
    env: Mapping[str, str] | None = None,
) -> LlmEndpoint:
    """Pick the LLM endpoint from flags, then LLMLENS_DEMO_*, then (optionally) OPENAI_*."""
    env = os.environ if env is None else env
    openai_url = env.get("OPENAI_BASE_URL") if allow_openai_env else None
    url = base_url or env.get(ENV_LLM_BASE_URL) or openai_url or default_base_url
    key = api_key or env.get(ENV_LLM_API_KEY) or env.get("OPENAI_API_KEY") or MOCK_API_KEY
    return LlmEndpoint(url.rstrip("/"), key, model or env.get(ENV_LLM_MODEL) or DEFAULT_MODEL)


def external_llm_from(
    base_url: str | None, api_key: str | None, model: str | None, env: Mapping[str, str] | None = None
) -> LlmEndpoint | None:
    """For the full demo: an external LLM only when asked for explicitly (flag or LLMLENS_DEMO_*)."""
    env = os.environ if env is None else env
    if not (base_url or env.get(ENV_LLM_BASE_URL)):
        return None
    return resolve_llm_endpoint(
        base_url, api_key, model, default_base_url="", allow_openai_env=False, env=env
    )


def port_is_free(host: str, port: int) -> bool:
    """True when a server could listen on the port now.

    SO_REUSEADDR, as uvicorn and the server set it: connections of a stopped run lingering in
    TIME_WAIT must not count as "in use", or a demo started again within a minute would refuse.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOOPBACK) -> int:
    """A port the OS reports free right now (another process may still take it before we bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def choose_ports(host: str, base_port: int | None, auto: bool) -> DemoPorts:
    """Fixed defaults, a consecutive block from base_port, or OS-chosen free ports."""
    if auto:
        chosen: list[int] = []
        while len(chosen) < 5:
            port = free_port(host)
            if port not in chosen:
                chosen.append(port)
        return DemoPorts(*chosen)
    if base_port is not None:
        if not 1 <= base_port <= 65535 - 4:
            raise ValueError(f"--base-port must be between 1 and {65535 - 4}, got {base_port}")
        return DemoPorts(*(base_port + i for i in range(5)))
    return DemoPorts(
        DEFAULT_SERVER_HTTP_PORT,
        DEFAULT_SERVER_GRPC_PORT,
        DEFAULT_CHATBOT_PORT,
        DEFAULT_RETRIEVER_PORT,
        DEFAULT_LLM_PORT,
    )


def check_ports_free(host: str, roles: Mapping[str, int]) -> None:
    """Raise PortInUseError for the first port that cannot be bound."""
    for role, port in roles.items():
        if not port_is_free(host, port):
            raise PortInUseError(role, host, port)


def default_data_dir() -> Path:
    return Path.home() / ".llmlens" / "demo"


def parse_scenarios(text: str) -> dict[str, float]:
    """Parse ``"simple,burst:2"`` into weights; raise ValueError naming the offending item."""
    weights: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, weight_text = item.partition(":")
        name = name.strip()
        if name not in SCENARIO_NAMES:
            raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIO_NAMES)}")
        try:
            weight = float(weight_text) if weight_text else 1.0
        except ValueError:
            raise ValueError(f"weight of scenario {name!r} must be a number, got {weight_text!r}") from None
        if weight <= 0:
            raise ValueError(f"weight of scenario {name!r} must be positive, got {weight_text}")
        weights[name] = weight
    if not weights:
        raise ValueError("no scenario given")
    return weights
