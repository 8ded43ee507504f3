"""What every demo service process does around its app: telemetry on, serve, flush on the way out."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import llmlens
from llmlens.demo.settings import APP_NAME, DEPARTMENT, LOOPBACK, default_otlp_endpoint, port_is_free


def add_service_arguments(parser: argparse.ArgumentParser, default_port: int) -> None:
    parser.add_argument("--host", default=LOOPBACK, help="interface to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=default_port, help="port to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--otlp-endpoint",
        default=None,
        help="llmlens server (OTLP/HTTP) to send traces, logs and metrics to "
        "(default: $LLMLENS_DEMO_OTLP_ENDPOINT or http://127.0.0.1:4318)",
    )


def start_telemetry(service_name: str, otlp_endpoint: str | None) -> None:
    llmlens.init(
        service_name=service_name,
        app=APP_NAME,
        department=DEPARTMENT,
        endpoint=otlp_endpoint or default_otlp_endpoint(),
    )
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
    try:
        uvicorn.run(build_app(), host=host, port=port, log_level="warning", access_log=False)
    finally:
        llmlens.shutdown()
    return 0
