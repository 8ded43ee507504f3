"""An OTLP/HTTP request's body: its content type, and its content encoding undone within a size limit."""

from __future__ import annotations

import gzip
import zlib
from typing import Literal

from llmlens.server.errors import PayloadError, PayloadTooLarge, UnsupportedMedia


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
