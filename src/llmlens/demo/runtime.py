"""What every demo service process does around its app: telemetry on, serve, flush on the way out."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import Any

import llmlens
from llmlens.demo.settings import APP_NAME, DEPARTMENT, default_otlp_endpoint, port_is_free


def start_telemetry(service_name: str, otlp_endpoint: str | None, logs: bool = True) -> None:
    """Traces and metrics always; structured logs (correlated with traces) when ``logs``."""
    llmlens.init(
        service_name=service_name,
        app=APP_NAME,
        department=DEPARTMENT,
        endpoint=otlp_endpoint or default_otlp_endpoint(),
    )
    if logs:
        llmlens.configure_logging()


def serve(
    service_name: str, host: str, port: int, otlp_endpoint: str | None, build_app: Callable[[], Any]
) -> int:
    """Check the port, turn telemetry on, build the app and run it until SIGTERM/SIGINT; returns an exit code."""
    import uvicorn

    if not port_is_free(host, port):
        print(f"error: {service_name}: port {port} on {host} is already in use", file=sys.stderr)
        return 2
    start_telemetry(service_name, otlp_endpoint)  # before the app exists, so its clients get instrumented
    exit_cleanly_on_signals()
    try:
        uvicorn.run(build_app(), host=host, port=port, log_level="warning", access_log=False)
    finally:
        llmlens.shutdown()
    return 0


def exit_cleanly_on_signals() -> None:
    """Make SIGTERM/SIGINT end the process through ``SystemExit(0)``.

    uvicorn shuts down gracefully on these signals and then re-raises the signal to the handler
    that was installed before it; with the default handler the process would die at that point,
    before ``llmlens.shutdown()`` flushes the last spans.
    """
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_zero)


def _exit_zero(signum: int, _frame: object) -> None:
    raise SystemExit(0)
