"""OTLP/HTTP: POST /v1/traces, /v1/logs, /v1/metrics, /v1development/profiles (protobuf or JSON,
gzip/deflate).

Answers follow the OTLP spec: 200 with an Export*ServiceResponse (partial_success when some
items were rejected), 400 for bad data, 408 for a body that came too slowly, 413 over the size
limit, 415 for an unknown content type or encoding, 429 with Retry-After when too much is waiting
(exports being received, decoded or committed, or rows for the writer), 503 with Retry-After when the store failed, a
decoder process died or the server is shutting down. Error bodies are google.rpc.Status in the
request's encoding. A body refused early is still read (within bounds) before the answer, so that
clients that write it whole before reading see the answer rather than a reset connection.
"""

from __future__ import annotations

import json
import logging

from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from llmlens.server.errors import ServerError, StoreError, answer, retry_after_header
from llmlens.server.receive.http_body import BodyReader, content_kind, decompress
from llmlens.server.receive.inflight import HeldBytes
from llmlens.server.receive.pipeline import Ingestor, IngestResult
from llmlens.server.signals import SIGNALS, BodyKind, Signal

log = logging.getLogger("llmlens.receive.http")


def otlp_routes() -> list[Route]:
    return [Route(signal.otlp_path, _endpoint(signal), methods=["POST"], name=f"otlp_{signal.name}")
            for signal in SIGNALS.values() if signal.otlp_path]


def _endpoint(signal: Signal):
    async def receive(request: Request) -> Response:
        ingestor: Ingestor = request.app.state.ingestor
        limit: int = request.app.state.settings.max_body_bytes
        reader = BodyReader(request.receive, request.headers, limit, ingestor.shutting_down)
        kind: BodyKind = "json"
        with ingestor.inflight.hold() as held:
            try:
                kind = content_kind(request.headers.get("content-type"))
                # The body is passed on, not kept here, so that it is freed when its batch is built.
                result = await ingestor.ingest(signal.name, await _body(request, reader, limit, held), kind)
            except ServerError as exc:
                ingestor.outcomes.refused(signal.name, "http", exc)
                held.release()
                await reader.discard()
                return _error(exc, signal.name, kind, close=not reader.complete)
            except ClientDisconnect:
                return Response(status_code=400)
        return _success(signal, result, kind)

    return receive


async def _body(request: Request, reader: BodyReader, limit: int, held: HeldBytes) -> bytes:
    """The body read and decompressed, `held` resized to what is kept."""
    body = decompress(await reader.read(held), request.headers.get("content-encoding"), limit)
    held.resize(len(body))
    return body


def _success(signal: Signal, result: IngestResult, kind: str) -> Response:
    response = signal.response_type()
    if result.rejected or result.message:
        setattr(response.partial_success, signal.rejected_field, result.rejected)
        response.partial_success.error_message = result.message
    if kind == "protobuf":
        return Response(response.SerializeToString(), media_type="application/x-protobuf")
    body = json_format.MessageToDict(response)
    return Response(json.dumps(body), media_type="application/json")


def _error(exc: ServerError, signal: str, kind: str, close: bool = False) -> Response:
    """The answer to a refused export; `close` ends the connection (the client has not sent all its
    body, and the server will not read the rest)."""
    found = answer(exc)
    message = str(exc)
    if isinstance(exc, StoreError):
        log.error("could not ingest %s: %s", signal, exc)
        message = "the store could not commit this batch; retry later"
    rpc = Status(code=found.grpc_code, message=message)
    headers = {**(retry_after_header(exc) or {}), **({"connection": "close"} if close else {})}
    if kind == "protobuf":
        return Response(rpc.SerializeToString(), status_code=found.http_status,
                        media_type="application/x-protobuf", headers=headers)
    return Response(json.dumps({"code": rpc.code, "message": message}), status_code=found.http_status,
                    media_type="application/json", headers=headers)
