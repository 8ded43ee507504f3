"""OTLP/gRPC: the trace, logs and metrics Export services, on grpc.aio in the server's loop.

Status codes follow the OTLP spec: INVALID_ARGUMENT for bad data, RESOURCE_EXHAUSTED for a
message over the size limit (grpc enforces it), UNAVAILABLE when too much is waiting, the store
failed or a decoder process died (retryable; with a google.rpc.RetryInfo delay, as Retry-After on
HTTP), UNAUTHENTICATED without the API key.
"""

from __future__ import annotations

import hmac
import logging
import math

import grpc
from google.protobuf.any_pb2 import Any as AnyMessage
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status

from llmlens.server.errors import ServerError, StoreError, answer
from llmlens.server.receive.pipeline import Ingestor
from llmlens.server.services import Service
from llmlens.server.settings import ServerSettings
from llmlens.server.signals import SIGNALS, Signal

log = logging.getLogger("llmlens.receive.grpc")
_STATUS_BY_CODE = {status.value[0]: status for status in grpc.StatusCode}


def _export_handler(ingestor: Ingestor, signal: Signal):
    async def export(body: bytes, context: grpc.aio.ServicerContext):
        # The request arrives as raw bytes (no grpc-side deserializer): we decode it ourselves,
        # in the same worker processes as OTLP/HTTP, and bad bytes become INVALID_ARGUMENT.
        try:
            with ingestor.inflight.hold(len(body)):
                result = await ingestor.ingest(signal.name, body, "protobuf")
        except ServerError as exc:
            ingestor.outcomes.refused(signal.name, "grpc", exc)
            message = str(exc)
            if isinstance(exc, StoreError):
                log.error("could not ingest %s: %s", signal.name, exc)
                message = "the store could not commit this batch; retry later"
            code = answer(exc).grpc_code
            await context.abort(_STATUS_BY_CODE[code], message, trailing_metadata=_retry_info(exc, code, message))
        response = signal.response_type()
        if result.rejected or result.message:
            setattr(response.partial_success, signal.rejected_field, result.rejected)
            response.partial_success.error_message = result.message
        return response

    return grpc.unary_unary_rpc_method_handler(export, request_deserializer=None,
                                               response_serializer=signal.response_type.SerializeToString)


def _retry_info(exc: ServerError, code: int, message: str) -> tuple[tuple[str, bytes], ...]:
    """A retryable error's delay as google.rpc.RetryInfo: in `google.rpc.retryinfo-bin` (read by the
    OpenTelemetry Python exporter) and in the status details (`grpc-status-details-bin`, read by
    grpc-status and the Go and Java exporters)."""
    if exc.retry_after is None:
        return ()
    info = RetryInfo()
    info.retry_delay.seconds = max(1, math.ceil(exc.retry_after))
    detail = AnyMessage()
    detail.Pack(info)
    status = Status(code=code, message=message, details=[detail])
    return (("google.rpc.retryinfo-bin", info.SerializeToString()),
            ("grpc-status-details-bin", status.SerializeToString()))


class _ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Any case of the scheme is accepted ('bearer', 'Bearer'), as on HTTP."""

    def __init__(self, api_key: str) -> None:
        self._expected = api_key.encode()

        async def deny(request, context):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong API key (send 'authorization: Bearer <key>')")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    async def intercept_service(self, continuation, handler_call_details):
        metadata = dict(handler_call_details.invocation_metadata or ())
        scheme, _, token = str(metadata.get("authorization", "")).partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self._expected):
            return await continuation(handler_call_details)
        return self._deny


async def start_grpc_server(ingestor: Ingestor, host: str, port: int, max_message_bytes: int,
                            api_key: str | None) -> grpc.aio.Server:
    interceptors = [_ApiKeyInterceptor(api_key)] if api_key else []
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ],
    )
    server.add_generic_rpc_handlers([
        grpc.method_handlers_generic_handler(signal.grpc_service, {"Export": _export_handler(ingestor, signal)})
        for signal in SIGNALS.values() if signal.grpc_service
    ])
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise OSError(f"cannot listen for OTLP/gRPC on {address} (port in use?)")
    await server.start()
    return server


def grpc_service(ingestor: Ingestor, settings: ServerSettings) -> Service:
    """The OTLP/gRPC receiver as a service of the app's lifespan."""
    server: grpc.aio.Server | None = None

    async def start() -> None:
        nonlocal server
        server = await start_grpc_server(ingestor, settings.host, settings.grpc_port, settings.max_body_bytes,
                                         settings.api_key)

    async def stop() -> None:
        if server is not None:
            await server.stop(grace=10)  # in-flight exports finish; new ones are refused

    return Service("OTLP/gRPC receiver", start, stop)
