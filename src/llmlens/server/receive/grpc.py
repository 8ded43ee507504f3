"""OTLP/gRPC: the trace, logs and metrics Export services, on grpc.aio in the server's loop.

Status codes follow the OTLP spec: INVALID_ARGUMENT for bad data, RESOURCE_EXHAUSTED for a
message over the size limit (grpc enforces it), UNAVAILABLE when the queue is full or the
store failed (retryable), UNAUTHENTICATED without the API key.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from llmlens.server.receive.pipeline import Ingestor
from llmlens.server.store import Overloaded, StoreError

log = logging.getLogger("llmlens.receive.grpc")


async def _export(ingestor: Ingestor, signal: str, request: Any, context: Any, response: Any, field: str) -> Any:
    try:
        # Re-serialising is a C-level copy; it lets gRPC share the HTTP path's worker processes.
        batch = await ingestor.build(signal, request.SerializeToString(), "protobuf")
        result = await ingestor.commit(batch)
    except Overloaded as exc:
        await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
    except StoreError as exc:
        log.error("store failed while ingesting %s: %s", signal, exc)
        await context.abort(grpc.StatusCode.UNAVAILABLE, "the store could not commit this batch; retry later")
    if result.rejected or result.message:
        setattr(response.partial_success, field, result.rejected)
        response.partial_success.error_message = result.message
    return response


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor

    async def Export(self, request, context):  # noqa: N802 -- name fixed by the OTLP service
        return await _export(self.ingestor, "traces", request, context,
                             trace_service_pb2.ExportTraceServiceResponse(), "rejected_spans")


class LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor

    async def Export(self, request, context):  # noqa: N802
        return await _export(self.ingestor, "logs", request, context,
                             logs_service_pb2.ExportLogsServiceResponse(), "rejected_log_records")


class MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor

    async def Export(self, request, context):  # noqa: N802
        return await _export(self.ingestor, "metrics", request, context,
                             metrics_service_pb2.ExportMetricsServiceResponse(), "rejected_data_points")


class _ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, api_key: str) -> None:
        self._expected = f"Bearer {api_key}".encode()

        async def deny(request, context):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong API key (send 'authorization: Bearer <key>')")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    async def intercept_service(self, continuation, handler_call_details):
        metadata = dict(handler_call_details.invocation_metadata or ())
        given = str(metadata.get("authorization", "")).encode()
        if hmac.compare_digest(given, self._expected):
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
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(ingestor), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(LogsService(ingestor), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(MetricsService(ingestor), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise OSError(f"cannot listen for OTLP/gRPC on {address} (port in use?)")
    await server.start()
    return server
