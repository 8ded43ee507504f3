"""OTLP/HTTP: POST /v1/traces, /v1/logs, /v1/metrics (protobuf or JSON, gzip/deflate).

Answers follow the OTLP spec: 200 with an Export*ServiceResponse (partial_success when some
items were rejected), 400 for bad data, 413 over the size limit, 415 for an unknown content
type or encoding, 429/503 with Retry-After when the write queue is full, the store failed or a
decoder process died.
Error bodies are google.rpc.Status in the request's encoding.
"""

from __future__ import annotations

import json
import logging

from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from llmlens.server.errors import PayloadTooLarge, ServerError, StoreError, answer, retry_after_header
from llmlens.server.receive.http_body import content_kind, decompress
from llmlens.server.receive.pipeline import Ingestor, IngestResult
from llmlens.server.signals import SIGNALS, BodyKind, Signal

log = logging.getLogger("llmlens.receive.http")


def otlp_routes() -> list[Route]:
    return [Route(f"/v1/{signal.name}", _endpoint(signal), methods=["POST"], name=f"otlp_{signal.name}")
            for signal in SIGNALS.values()]


def _endpoint(signal: Signal):
    async def receive(request: Request) -> Response:
        ingestor: Ingestor = request.app.state.ingestor
        limit: int = request.app.state.settings.max_body_bytes
        kind: BodyKind = "json"
        try:
            kind = content_kind(request.headers.get("content-type"))
            body = await _read_body(request, limit)
            body = decompress(body, request.headers.get("content-encoding"), limit)
            result = await ingestor.ingest(signal.name, body, kind)
        except ServerError as exc:
            return _error(exc, signal.name, kind)
        except ClientDisconnect:
            return Response(status_code=400)
        return _success(signal, result, kind)

    return receive


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body is {declared} bytes, over the {limit}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _success(signal: Signal, result: IngestResult, kind: str) -> Response:
    response = signal.response_type()
    if result.rejected or result.message:
        setattr(response.partial_success, signal.rejected_field, result.rejected)
        response.partial_success.error_message = result.message
    if kind == "protobuf":
        return Response(response.SerializeToString(), media_type="application/x-protobuf")
    body = json_format.MessageToDict(response)
    return Response(json.dumps(body), media_type="application/json")


def _error(exc: ServerError, signal: str, kind: str) -> Response:
    found = answer(exc)
    message = str(exc)
    if isinstance(exc, StoreError):
        log.error("could not ingest %s: %s", signal, exc)
        message = "the store could not commit this batch; retry later"
    rpc = Status(code=found.grpc_code, message=message)
    headers = retry_after_header(exc)
    if kind == "protobuf":
        return Response(rpc.SerializeToString(), status_code=found.http_status,
                        media_type="application/x-protobuf", headers=headers)
    return Response(json.dumps({"code": rpc.code, "message": message}), status_code=found.http_status,
                    media_type="application/json", headers=headers)
