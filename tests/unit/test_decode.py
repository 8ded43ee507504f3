"""OTLP body decoding: encodings, content types, limits, OTLP/JSON's hex ids."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from llmlens.server.decode.messages import decode_request
from llmlens.server.errors import PayloadError, PayloadTooLarge, UnsupportedMedia
from llmlens.server.receive.http_body import content_kind, decompress
from llmlens.server.signals import SIGNALS
from tests.conftest import CORPUS

LIMIT = 1 << 20
TRACES = SIGNALS["traces"].request_type


@pytest.mark.parametrize(("encoding", "pack"), [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some clients send it
    ("identity", lambda b: b),
    (None, lambda b: b),
])
def test_encodings_round_trip(encoding, pack):
    body = (CORPUS / "otel" / "chat.traces.pb").read_bytes()
    assert decompress(pack(body), encoding, LIMIT) == body


def test_gzip_bomb_is_stopped_at_the_limit():
    """A small body that inflates past the limit is refused without inflating it all."""
    bomb = gzip.compress(b"\0" * (64 << 20))
    assert len(bomb) < 100_000
    with pytest.raises(PayloadTooLarge):
        decompress(bomb, "gzip", 16 << 20)


@pytest.mark.parametrize(("data", "encoding", "error"), [
    (b"not gzip", "gzip", PayloadError),
    (gzip.compress(b"x" * 1000)[:-12], "gzip", PayloadError),
    (b"x", "br", UnsupportedMedia),
    (b"x" * (LIMIT + 1), None, PayloadTooLarge),
])
def test_bad_encodings(data, encoding, error):
    with pytest.raises(error):
        decompress(data, encoding, LIMIT)


@pytest.mark.parametrize(("header", "kind"), [
    ("application/x-protobuf", "protobuf"), ("application/json; charset=utf-8", "json"),
    ("Application/JSON", "json"), ("application/protobuf", "protobuf"),
])
def test_content_types(header, kind):
    assert content_kind(header) == kind


@pytest.mark.parametrize("header", [None, "", "text/plain", "application/xml", "multipart/form-data"])
def test_unsupported_content_types(header):
    with pytest.raises(UnsupportedMedia, match="content-type"):
        content_kind(header)


def test_json_hex_ids_become_bytes():
    """OTLP/JSON carries hex ids; the decoded message holds the 16 and 8 raw bytes."""
    body = (CORPUS / "otel" / "chat.traces.json").read_bytes()
    span = decode_request(TRACES, body, "json").resource_spans[0].scope_spans[0].spans[0]
    doc = json.loads(body)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span.trace_id.hex() == doc["traceId"].lower() and len(span.span_id) == 8


@pytest.mark.parametrize(("body", "needle"), [
    (b"", "JSON"),
    (b"\xff\xfe\x00garbage", "UTF-8"),
    (b"[1, 2]", "object"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "hex"),
    (b'{"resourceSpans": "nope"}', "OTLP/JSON"),
    (b"[" * 5000 + b"]" * 5000, "JSON"),
])
def test_bad_json_bodies(body, needle):
    with pytest.raises(PayloadError, match=needle):
        decode_request(TRACES, body, "json")


def test_truncated_protobuf_is_refused():
    body = (CORPUS / "openlit" / "chat.traces.pb").read_bytes()
    with pytest.raises(PayloadError, match="protobuf"):
        decode_request(TRACES, body[: len(body) // 2], "protobuf")


def test_empty_protobuf_body_is_an_empty_request():
    """The spec: an empty request is a success with nothing in it."""
    assert len(decode_request(TRACES, b"", "protobuf").resource_spans) == 0
