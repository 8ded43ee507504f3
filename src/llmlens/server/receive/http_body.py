"""An OTLP/HTTP request's body: read within limits of size, time and memory; its content type; and
its content encoding undone within the size limit."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import zlib
from collections.abc import Mapping
from typing import Literal

from starlette.requests import ClientDisconnect
from starlette.types import Receive

from llmlens.server.errors import (
    PayloadError,
    PayloadTooLarge,
    RequestTimeout,
    ServerError,
    Unavailable,
    UnsupportedMedia,
)
from llmlens.server.receive.inflight import HeldBytes

# The whole body must arrive within this of its headers: exporters give up on an export after 10 s
# by default, and a client trickling bytes (slowloris) must not hold a connection and budget for long.
BODY_TIMEOUT_S = 30.0
# A refused body is still read and dropped, up to this many times the size limit and for at most
# DISCARD_TIMEOUT_S: clients that write the whole body before reading (urllib, requests) otherwise
# see a reset connection instead of the answer, and OTLP exporters retry a reset.
DISCARD_FACTOR = 4
DISCARD_TIMEOUT_S = 10.0
SHUTTING_DOWN_RETRY_S = 5.0


class BodyReader:
    """Reads one request body from ASGI `receive`: at most `limit` bytes, held in the in-flight
    budget as they arrive (all of Content-Length up front), within BODY_TIMEOUT_S, and refused with
    503 as soon as `stopping` is set (the server shutting down must not wait for a slow upload)."""

    def __init__(self, receive: Receive, headers: Mapping[str, str], limit: int, stopping: asyncio.Event) -> None:
        self._receive = receive
        self._limit = limit
        self._stopping = stopping
        declared = headers.get("content-length", "")
        self._declared = int(declared) if declared.isdigit() else None
        self._expects_continue = headers.get("expect", "").strip().lower() == "100-continue"
        self._deadline = asyncio.get_running_loop().time() + BODY_TIMEOUT_S
        self.received = 0  # bytes of the body read so far, kept or dropped
        self.complete = False  # the client has sent all of it

    async def read(self, held: HeldBytes) -> bytes:
        """The whole body; raises PayloadTooLarge, Overloaded (the budget is full), RequestTimeout,
        Unavailable (shutting down) or ClientDisconnect."""
        if self._declared is not None:
            if self._declared > self._limit:
                raise PayloadTooLarge(f"body is {self._declared} bytes, over the {self._limit}-byte limit")
            held.resize(self._declared)
        chunks: list[bytes] = []
        while not self.complete:
            chunk = await self._next(self._deadline)
            if self.received > self._limit:
                raise PayloadTooLarge(f"body is over the {self._limit}-byte limit")
            if self._declared is None:
                held.resize(self.received)
            chunks.append(chunk)
        return b"".join(chunks)

    async def discard(self) -> None:
        """Read and drop what is left of a refused body, within the bounds above."""
        if self.complete or (self._expects_continue and self.received == 0):
            return  # a client waiting for 100 Continue sends no body once it has the answer
        most = DISCARD_FACTOR * self._limit
        if self._declared is not None and self._declared > most:
            return
        deadline = min(self._deadline, asyncio.get_running_loop().time() + DISCARD_TIMEOUT_S)
        with contextlib.suppress(ServerError, ClientDisconnect):
            while not self.complete and self.received <= most:
                await self._next(deadline)

    async def _next(self, deadline: float) -> bytes:
        if self._stopping.is_set():
            raise Unavailable("the server is shutting down; retry", retry_after=SHUTTING_DOWN_RETRY_S)
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise RequestTimeout(f"the body did not arrive within {BODY_TIMEOUT_S:g} s")
        receiving = asyncio.ensure_future(self._receive())
        stopping = asyncio.ensure_future(self._stopping.wait())
        done, _ = await asyncio.wait((receiving, stopping), timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if receiving not in done:
            receiving.cancel()
            return await self._next(deadline)  # raises for the reason it stopped
        message = receiving.result()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        self.received += len(chunk)
        self.complete = not message.get("more_body", False)
        return chunk


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo Content-Encoding, refusing to inflate past `limit` bytes (gzip bombs)."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limit:
            raise PayloadTooLarge(f"body is {len(body)} bytes, over the {limit}-byte limit")
        return body
    if encoding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS  # zlib-wrapped, as HTTP's "deflate" means; raw deflate tried below
    else:
        raise UnsupportedMedia(f"content-encoding {encoding!r} is not supported (use gzip, deflate or identity)")
    try:
        return _inflate(body, wbits, limit)
    except zlib.error as exc:
        if encoding == "deflate":
            try:
                return _inflate(body, -zlib.MAX_WBITS, limit)
            except zlib.error:
                pass
        raise PayloadError(f"body is not valid {encoding} data: {exc}") from exc


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"body inflates past the {limit}-byte limit")
    if not inflater.eof:
        raise PayloadError("compressed body is truncated")
    return out


def content_kind(content_type: str | None) -> Literal["protobuf", "json"]:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in ("application/x-protobuf", "application/protobuf"):
        return "protobuf"
    if media == "application/json":
        return "json"
    raise UnsupportedMedia(
        f"content-type {content_type!r} is not supported (use application/x-protobuf or application/json)"
    )


def gzip_bytes(data: bytes) -> bytes:
    """For tests and benchmarks: what an exporter with compression=gzip sends."""
    return gzip.compress(data)
