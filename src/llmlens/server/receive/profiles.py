"""Pyroscope's profile endpoints, so that apps instrumented with Pyroscope's SDKs send here unchanged:

- `POST /ingest` (and `/pyroscope/ingest`): `name=app.cpu{tag=value,...}`, `from`, `until` (unix
  seconds), `format` (`pprof`, `lines`, or folded lines when absent), `sampleRate`, `spyName`; the
  body a pprof profile (raw or gzip'ed), folded text, or a multipart form with a `profile` file.
- `POST /push.v1.PusherService/Push`: the Connect protocol's unary call (what the `pyroscope-io`
  Python package and Grafana Alloy send): a PushRequest in protobuf (`application/proto`) or JSON,
  gzip'ed as Content-Encoding says, each series' pprof profiles in `raw_profile`.

Both go through the same ingest pipeline as OTLP (body limits, in-flight budget, worker processes,
one commit, a resent request stored once). /ingest's handler only wraps the body and its query
parameters in a PushRequest (labels for the decoder, see normalise/profiles.py): cheap, and all the
decoding happens in the workers. Errors: 400 bad parameters or body, 413 too large, 415 unknown
format or content type, 429/503 with Retry-After; /ingest answers JSON `{"code", "message"}`, Push
a Connect error (`{"code": "invalid_argument", "message"}`).
"""

from __future__ import annotations

import json
import logging
import re
import time

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from llmlens.server.decode.proto import pyroscope_push_pb2
from llmlens.server.errors import (
    BadRequest,
    ServerError,
    StoreError,
    UnsupportedMedia,
    answer,
    retry_after_header,
)
from llmlens.server.normalise.profiles import (
    CONTENT_TYPE_LABEL,
    DEFAULT_PROFILE_TYPE,
    FORMAT_LABEL,
    FROM_LABEL,
)
from llmlens.server.receive.http_body import BodyReader, decompress
from llmlens.server.receive.pipeline import Ingestor

log = logging.getLogger("llmlens.receive.profiles")
SIGNAL = "pyroscope"
# Pyroscope's legacy profile names (the part of `name` after the last dot) -> its __name__ label.
_PROFILE_TYPES = {"cpu": DEFAULT_PROFILE_TYPE, "itimer": DEFAULT_PROFILE_TYPE, "wall": "wall",
                  "alloc_objects": "memory", "alloc_space": "memory", "inuse_objects": "memory",
                  "inuse_space": "memory"}
_TAG = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*([^,]*)\s*")
_FORMATS = {"pprof": "pprof", "lines": "lines", "folded": "folded", "": "folded"}
# Connect's error codes for the HTTP statuses our errors get.
_CONNECT_CODES = {400: "invalid_argument", 401: "unauthenticated", 408: "deadline_exceeded",
                  413: "resource_exhausted", 415: "invalid_argument", 429: "resource_exhausted",
                  503: "unavailable", 504: "deadline_exceeded"}


def profile_routes() -> list[Route]:
    return [Route("/ingest", ingest, methods=["POST"], name="pyroscope_ingest"),
            Route("/pyroscope/ingest", ingest, methods=["POST"], name="pyroscope_ingest_prefixed"),
            Route("/push.v1.PusherService/Push", push, methods=["POST"], name="pyroscope_push")]


def parse_name(name: str) -> tuple[str, str, dict[str, str]]:
    """`app.name.cpu{k=v,...}` -> (service, profile type, tags); the service is the `service_name`
    tag when given, else the name before the last dot."""
    head, brace, rest = name.partition("{")
    tags: dict[str, str] = {}
    if brace:
        if not rest.endswith("}"):
            raise BadRequest(f"name {name[:200]!r}: tags must end with '}}'")
        for part in filter(str.strip, rest[:-1].split(",")):
            match = _TAG.fullmatch(part)
            if not match:
                raise BadRequest(f"name {name[:200]!r}: bad tag {part[:80]!r} (expected key=value)")
            tags[match.group(1)] = match.group(2).strip().strip('"')
    app, dot, suffix = head.strip().rpartition(".")
    if not dot:
        app, suffix = suffix, "cpu"
    service = tags.pop("service_name", "") or app
    if not service:
        raise BadRequest(f"name {name[:200]!r} names no application")
    return service, _PROFILE_TYPES.get(suffix, suffix or DEFAULT_PROFILE_TYPE), tags


def _unix_seconds(text: str | None, parameter: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or len(text) > 20:
        raise BadRequest(f"{parameter}: expected unix time in seconds, got {text[:40]!r}")
    value = int(text)
    while value > 10**11:  # milliseconds, microseconds or nanoseconds: Pyroscope's clients vary
        value //= 1000
    return value


def ingest_request(params, content_type: str, body: bytes) -> bytes:
    """The PushRequest (serialised) that carries an /ingest body and its parameters to the decoder."""
    name = params.get("name")
    if not name:
        raise BadRequest("the name parameter is required (like my-app.cpu{env=prod})")
    service, profile_type, tags = parse_name(name)
    fmt = (params.get("format") or "").strip().lower()
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "multipart/form-data" and fmt in ("", "pprof"):
        fmt = "multipart"
    elif fmt in _FORMATS:
        fmt = _FORMATS[fmt]
    else:
        raise UnsupportedMedia(f"format {fmt[:40]!r} is not supported (pprof, lines, or folded lines "
                               "when no format is given)")
    start = _unix_seconds(params.get("from"), "from")
    until = _unix_seconds(params.get("until"), "until")
    if start is not None and until is not None and until < start:
        raise BadRequest("until must not be before from")
    if start is None and fmt not in ("pprof", "multipart"):
        start = until if until is not None else int(time.time())
    labels = {**tags, "service_name": service, "__name__": profile_type, FORMAT_LABEL: fmt}
    if start is not None:
        labels[FROM_LABEL] = str(start)
    if fmt == "multipart":
        labels[CONTENT_TYPE_LABEL] = content_type
    request = pyroscope_push_pb2.PushRequest()
    series = request.series.add()
    for key, value in labels.items():
        series.labels.add(name=key, value=value)
    series.samples.add(raw_profile=body)
    return request.SerializeToString(deterministic=True)


async def ingest(request: Request) -> Response:
    async def build(body: bytes) -> tuple[bytes, str]:
        return ingest_request(request.query_params, request.headers.get("content-type", ""), body), "protobuf"

    error, close = await _ingest(request, build)
    if error is not None:
        return _json_error(error, connect=False, close=close)
    return Response(status_code=200)


async def push(request: Request) -> Response:
    async def build(body: bytes) -> tuple[bytes, str]:
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media in ("application/proto", "application/protobuf", "application/x-protobuf"):
            return body, "protobuf"
        if media == "application/json":
            return body, "json"
        raise UnsupportedMedia(f"content-type {media[:80]!r} is not supported (application/proto or "
                               "application/json, as the Connect protocol sends)")

    error, close = await _ingest(request, build)
    if error is not None:
        return _json_error(error, connect=True, close=close)
    if request.headers.get("content-type", "").startswith("application/json"):
        return Response("{}", media_type="application/json")
    return Response(pyroscope_push_pb2.PushResponse().SerializeToString(), media_type="application/proto")


async def _ingest(request: Request, build) -> tuple[ServerError | None, bool]:
    """Read, decompress and ingest the body: the error to answer, if any, and whether to close the
    connection (the client has not sent all its body, and the server will not read the rest)."""
    ingestor: Ingestor = request.app.state.ingestor
    limit: int = request.app.state.settings.max_body_bytes
    reader = BodyReader(request.receive, request.headers, limit, ingestor.shutting_down)
    with ingestor.inflight.hold() as held:
        try:
            body = decompress(await reader.read(held), request.headers.get("content-encoding"), limit)
            held.resize(len(body))
            body, kind = await build(body)
            result = await ingestor.ingest(SIGNAL, body, kind)  # type: ignore[arg-type]
            if result.rejected and not result.accepted:
                raise BadRequest(result.message or "no profile in the request could be stored")
            return None, False
        except ServerError as exc:
            ingestor.outcomes.refused(SIGNAL, "http", exc)
            held.release()
            await reader.discard()
            if isinstance(exc, StoreError):
                log.error("could not ingest profiles: %s", exc)
            return exc, not reader.complete
        except ClientDisconnect:
            return BadRequest("the client disconnected before sending the whole body"), True


def _json_error(exc: ServerError, connect: bool, close: bool) -> Response:
    found = answer(exc)
    message = "the store could not commit this batch; retry later" if isinstance(exc, StoreError) else str(exc)
    code = _CONNECT_CODES.get(found.http_status, "unknown") if connect else found.code
    return Response(json.dumps({"code": code, "message": message}), status_code=found.http_status,
                    media_type="application/json",
                    headers={**(retry_after_header(exc) or {}), **({"connection": "close"} if close else {})})
