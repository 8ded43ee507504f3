"""A tiny FastAPI service for the propagation test: `/hop` calls the next service over httpx, `/leaf` ends.

    python -m tests.sdk.hop_service --name a --port N --otlp URL [--next http://127.0.0.1:M]
"""

from __future__ import annotations

import argparse

import llmlens


def build_app(next_url: str | None):
    import httpx
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/hop")
    async def hop() -> dict:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{next_url}/leaf")
        return {"downstream": response.json()}

    @app.get("/leaf")
    async def leaf() -> dict:
        with llmlens.span("leaf work", kind="tool"):
            from opentelemetry import baggage

            return {"baggage": dict(baggage.get_all())}

    return app


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--otlp", required=True)
    p.add_argument("--next", default=None)
    args = p.parse_args()
    llmlens.init(service_name=f"svc-{args.name}", endpoint=args.otlp)  # before the app exists: FastAPI gets traced
    import signal

    import uvicorn

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    # uvicorn re-raises SIGTERM after its graceful shutdown; turn it into SystemExit so `finally` flushes.
    signal.signal(signal.SIGTERM, stop)
    try:
        uvicorn.run(build_app(args.next), host="127.0.0.1", port=args.port, log_level="warning")
    finally:
        llmlens.shutdown()


if __name__ == "__main__":
    main()
