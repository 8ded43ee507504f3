"""What every demo service process does around its app: telemetry on, serve, flush on the way out."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import llmlens
from llmlens.demo.apps import DEFAULT_APP
from llmlens.demo.settings import default_otlp_endpoint, port_is_free

FLUSH_TIMEOUT_S = 8.0  # below the orchestrator's stop grace, so a normal stop never needs SIGKILL


def start_telemetry(
    service_name: str, otlp_endpoint: str | None, logs: bool = True, instrument_http: bool = True
) -> None:
    """Traces and metrics always; structured logs (correlated with traces) when ``logs``.

    The app and department given here are the fallback: a request's own (from the traffic's
    ``llmlens.context``, carried as baggage) win on its spans and metrics.
    """
    llmlens.init(
        service_name=service_name,
        app=DEFAULT_APP.name,
        department=DEFAULT_APP.department,
        endpoint=otlp_endpoint or default_otlp_endpoint(),
        instrument_http=instrument_http,
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
    # The served apps (chatbot, retriever) run with the continuous profiler on, so the demo has flame
    # graphs; LLMLENS_PROFILING=false in their environment turns it off.
    os.environ.setdefault("LLMLENS_PROFILING", "true")
    start_telemetry(service_name, otlp_endpoint)  # before the app exists, so its clients get instrumented
    exit_cleanly_on_signals()
    try:
        uvicorn.run(build_app(), host=host, port=port, log_level="warning", access_log=False)
    finally:
        stop_telemetry()
    return 0


def stop_telemetry(timeout_s: float = FLUSH_TIMEOUT_S) -> None:
    """Flush and stop telemetry, but never let a stuck flush keep the process alive.

    With the server gone, exporters retry; a service told to stop must still stop promptly, so
    after ``timeout_s`` the process exits without waiting further (and without atexit hooks that
    would retry the same flush).
    """
    worker = threading.Thread(target=llmlens.shutdown, name="llmlens-shutdown", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        print(f"warning: telemetry not flushed within {timeout_s:g} s; exiting without it", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


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
