"""Hostile OTLP input over HTTP and gRPC, and hostile query parameters: every one gets a clear 4xx
(never a 5xx), the server keeps serving, and nothing accepted before is lost."""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import grpc
import httpx
import pytest
import requests
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.conftest import CORPUS
from tests.integration.otlp_requests import (
    JSON,
    PROTOBUF,
    error_status,
    export_response,
    log_request,
    make_log,
    make_span,
    post,
    to_otlp_json,
    trace_request,
)
from tests.server_process import ServerProcess

MIB = 1024 * 1024
CHAT_PB = (CORPUS / "otel" / "chat.traces.pb").read_bytes()
CHAT_JSON = (CORPUS / "otel" / "chat.traces.json").read_bytes()
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture(scope="module")
def server(llmlens_server: ServerProcess) -> ServerProcess:
    """The shared server, holding one known good trace before any hostile input arrives."""
    answer = post(llmlens_server.url, "traces", trace_request([make_span("before-the-storm")]))
    assert answer.status_code == 200
    return llmlens_server


@pytest.fixture
def still_serving(server: ServerProcess) -> Iterator[None]:
    """After the test: the server answers, accepts a good export, and lost nothing it had stored."""
    before = server.status()
    yield
    assert server.get("/healthz").status_code == 200
    marker = make_span("after-hostile-input")
    assert post(server.url, "traces", trace_request([marker])).status_code == 200
    after = server.status()
    for signal in ("spans", "logs", "metric_points"):
        assert after[signal] >= before[signal], f"{signal} went down: {before} -> {after}"
    assert after["spans"] > before["spans"]


def assert_refused(response: httpx.Response, status: int, *words: str) -> str:
    """A refusal with this status whose google.rpc.Status message mentions every word."""
    assert response.status_code == status, f"{response.status_code}: {response.content[:300]!r}"
    message = error_status(response).message
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"
    return message


# --- malformed bodies ----------------------------------------------------------------------

def test_empty_protobuf_body_is_an_empty_successful_export(server: ServerProcess, still_serving: None) -> None:
    """An empty protobuf body is a valid empty request (OTLP: success, nothing stored)."""
    before = server.status()["spans"]
    answer = post(server.url, "traces", b"")
    assert answer.status_code == 200
    assert not export_response("traces", answer).HasField("partial_success")
    assert server.status()["spans"] == before


def test_empty_json_body_is_refused_as_bad_json(server: ServerProcess, still_serving: None) -> None:
    """An empty JSON body is not a JSON document: 400 saying so."""
    assert_refused(post(server.url, "traces", b"", content_type=JSON), 400, "JSON")


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
def test_random_bytes_are_refused(server: ServerProcess, still_serving: None, signal: str) -> None:
    """Random bytes as protobuf on every signal: 400 naming the signal and protobuf."""
    garbage = bytes(range(256)) * 4 + os.urandom(1024)
    assert_refused(post(server.url, signal, garbage), 400, signal, "protobuf")


def test_truncated_protobuf_is_refused(server: ServerProcess, still_serving: None) -> None:
    """A real export cut in half: 400, and none of its spans stored."""
    before = server.status()["spans"]
    assert_refused(post(server.url, "traces", CHAT_PB[: len(CHAT_PB) // 2]), 400, "protobuf")
    assert server.status()["spans"] == before


def test_logs_message_sent_to_traces_is_refused(server: ServerProcess, still_serving: None) -> None:
    """A logs export posted to /v1/traces does not decode as traces: 400."""
    logs_body = (CORPUS / "otel" / "chat.logs.pb").read_bytes()
    assert_refused(post(server.url, "traces", logs_body), 400, "traces")


def test_metrics_message_sent_to_logs_stores_nothing(server: ServerProcess, still_serving: None) -> None:
    """A metrics export posted to /v1/logs happens to parse; every 'record' is then rejected, none stored."""
    before = server.status()["logs"]
    answer = post(server.url, "logs", (CORPUS / "otel" / "chat.metrics.pb").read_bytes())
    if answer.status_code == 200:
        partial = export_response("logs", answer).partial_success
        assert partial.rejected_log_records > 0 and partial.error_message
    else:
        assert_refused(answer, 400)
    assert server.status()["logs"] == before


@pytest.mark.parametrize(("field", "value"), [("traceId", "zz" * 16), ("spanId", "not-hex!"),
                                              ("traceId", "0102"), ("traceId", 12345)])
def test_json_with_bad_ids_is_refused(server: ServerProcess, still_serving: None, field: str, value: object) -> None:
    """OTLP/JSON ids that are not hex, or of the wrong length/type: 400 naming the field, or rejected
    through partial success; never stored."""
    document = json.loads(to_otlp_json(trace_request([make_span("bad-json-id")])))
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span[field] = value
    before = server.status()["spans"]
    answer = post(server.url, "traces", json.dumps(document).encode(), content_type=JSON)
    if answer.status_code == 200:
        assert export_response("traces", answer).partial_success.rejected_spans == 1
    else:
        assert_refused(answer, 400, field)
    assert server.status()["spans"] == before


def test_invalid_utf8_in_json_is_refused(server: ServerProcess, still_serving: None) -> None:
    """Bytes that are not UTF-8 inside an OTLP/JSON body: 400 naming UTF-8."""
    body = CHAT_JSON.replace(b'"chat gpt-4o-mini"', b'"chat \xff\xfe gpt"', 1)
    assert body != CHAT_JSON
    assert_refused(post(server.url, "traces", body, content_type=JSON), 400, "UTF-8")


def test_invalid_utf8_in_protobuf_string_is_refused(server: ServerProcess, still_serving: None) -> None:
    """A protobuf string field holding invalid UTF-8 (proto3 strings must be UTF-8): 400."""
    good = trace_request([make_span("UTF8MARK")]).SerializeToString()
    bad = good.replace(b"UTF8MARK", b"UTF8\xff\xfeRK")
    assert_refused(post(server.url, "traces", bad), 400, "protobuf")


def test_json_nested_beyond_any_reason_is_refused(server: ServerProcess, still_serving: None) -> None:
    """100,000 nested JSON arrays: 400 about nesting, not a crashed worker."""
    assert_refused(post(server.url, "traces", b"[" * 100_000 + b"]" * 100_000, content_type=JSON), 400, "nest")


# --- spans without valid ids: partial success ----------------------------------------------

@pytest.mark.parametrize(("trace_id", "span_id", "why"), [
    (bytes(16), os.urandom(8), "trace_id"),
    (b"", os.urandom(8), "trace_id"),
    (os.urandom(16), bytes(8), "span_id"),
    (os.urandom(16), b"\x01\x02", "span_id"),
    (os.urandom(15), os.urandom(8), "trace_id"),
], ids=["zero-trace-id", "empty-trace-id", "zero-span-id", "short-span-id", "15-byte-trace-id"])
@pytest.mark.parametrize("content_type", [PROTOBUF, JSON], ids=["pb", "json"])
def test_spans_without_valid_ids_are_rejected_through_partial_success(
        server: ServerProcess, still_serving: None, trace_id: bytes, span_id: bytes, why: str,
        content_type: str) -> None:
    """A batch of one bad-id span and two good spans: 200, rejected_spans=1 naming the id, the good two stored."""
    good = [make_span("good-1"), make_span("good-2")]
    bad = make_span("bad-ids", trace_id=trace_id, span_id=span_id)
    before = server.status()["spans"]
    answer = post(server.url, "traces", trace_request([good[0], bad, good[1]]), content_type=content_type)
    assert answer.status_code == 200, answer.text
    partial = export_response("traces", answer).partial_success
    assert partial.rejected_spans == 1
    assert why in partial.error_message and "bad-ids" in partial.error_message
    assert server.status()["spans"] == before + 2
    for span in good:
        assert server.get(f"/api/v1/traces/{span.trace_id.hex()}").status_code == 200


def test_log_records_with_bad_ids_are_rejected_through_partial_success(server: ServerProcess,
                                                                       still_serving: None) -> None:
    """A log record whose trace_id is 3 bytes is rejected by count and reason; its good neighbour is stored."""
    before = server.status()["logs"]
    records = [make_log("good log line"), make_log("bad log line", trace_id=b"\x01\x02\x03")]
    answer = post(server.url, "logs", log_request(records))
    assert answer.status_code == 200
    partial = export_response("logs", answer).partial_success
    assert partial.rejected_log_records == 1 and "trace_id" in partial.error_message
    assert server.status()["logs"] == before + 1


# --- oversized content: truncated by the documented rule ----------------------------------

def test_span_with_100k_attributes_keeps_1024_and_counts_the_rest(server: ServerProcess,
                                                                   still_serving: None) -> None:
    """100,000 attributes: stored with the first 1024 plus llmlens.dropped_attributes = 98976."""
    span = make_span("many-attributes")
    span.attributes.extend(KeyValue(key=f"k{i:06d}", value=AnyValue(int_value=i)) for i in range(100_000))
    assert post(server.url, "traces", trace_request([span])).status_code == 200
    stored = server.get(f"/api/v1/traces/{span.trace_id.hex()}").json()["spans"][0]["attributes"]
    assert stored["llmlens.dropped_attributes"] == str(100_000 - 1024)
    kept = {k for k in stored if k.startswith("k")}
    assert len(kept) == 1024
    assert kept == {f"k{i:06d}" for i in range(1024)}


def test_10mb_attribute_value_is_cut_to_64kib(server: ServerProcess, still_serving: None) -> None:
    """A 10 MB string value is stored as its first 64 KiB characters ending in the truncation mark."""
    span = make_span("huge-value", attrs={"prompt": "p" * 10_000_000, "small": "kept"})
    assert post(server.url, "traces", trace_request([span])).status_code == 200
    stored = server.get(f"/api/v1/traces/{span.trace_id.hex()}").json()["spans"][0]["attributes"]
    assert len(stored["prompt"]) == 65_536
    assert stored["prompt"].endswith("…[truncated]") and stored["prompt"].startswith("ppp")
    assert stored["small"] == "kept"


def _deep_body(depth: int, span: Span) -> bytes:
    """A traces export whose span has one attribute of `depth` nested kvlists, encoded by hand
    (the protobuf library refuses to build messages this deep)."""
    def ld(field: int, payload: bytes) -> bytes:
        return _varint(field << 3 | 2) + _varint(len(payload)) + payload

    value = ld(1, b"leaf")
    for _ in range(depth):
        value = ld(6, ld(1, ld(1, b"k") + ld(2, value)))  # AnyValue{kvlist_value{values: [KeyValue]}}
    span_bytes = span.SerializeToString() + ld(9, ld(1, b"deep") + ld(2, value))
    return ld(1, ld(2, ld(2, span_bytes)))  # request.resource_spans[0].scope_spans[0].spans[0]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_anyvalue_nested_past_depth_16_is_cut(server: ServerProcess, still_serving: None) -> None:
    """An attribute nested 20 levels deep is stored with the levels past 16 replaced by '…'."""
    span = make_span("deep-20")
    assert post(server.url, "traces", _deep_body(20, span)).status_code == 200
    stored = server.get(f"/api/v1/traces/{span.trace_id.hex()}").json()["spans"][0]["attributes"]["deep"]
    assert stored.count('"k"') == 16 and "leaf" not in stored and "…" in stored


def test_anyvalue_nested_2000_deep_is_refused(server: ServerProcess, still_serving: None) -> None:
    """An AnyValue nested 2,000 deep: 400 about the depth, nothing stored."""
    span = make_span("deep-2000")
    assert_refused(post(server.url, "traces", _deep_body(2000, span)), 400, "depth")
    assert server.get(f"/api/v1/traces/{span.trace_id.hex()}").status_code == 404


# --- size limits, encodings, content types -------------------------------------------------

def test_gzip_bomb_is_refused_with_413(server: ServerProcess, still_serving: None) -> None:
    """200 KB of gzip inflating to 200 MiB: 413 without inflating it all."""
    bomb = gzip.compress(b"\0" * (200 * MIB), compresslevel=9)
    assert len(bomb) < MIB
    assert_refused(post(server.url, "traces", bomb, encoding="gzip"), 413, "limit")


def test_deflate_bomb_is_refused_with_413(server: ServerProcess, still_serving: None) -> None:
    """The same bomb as deflate: 413."""
    bomb = zlib.compress(b"\0" * (64 * MIB), 9)
    assert_refused(post(server.url, "traces", bomb, encoding="deflate"), 413, "limit")


def test_64mib_body_is_refused_with_413(server: ServerProcess, still_serving: None) -> None:
    """A 64 MiB plain body (over the 16 MiB default): 413 naming the limit."""
    assert_refused(post(server.url, "traces", b"\n" * (64 * MIB)), 413, str(16 * MIB))


def test_64mib_body_without_content_length_is_refused_with_413(server: ServerProcess, still_serving: None) -> None:
    """The same 64 MiB sent chunked (no Content-Length to trust): 413."""
    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b"\n" * MIB

    answer = httpx.post(f"{server.url}/v1/traces", content=chunks(), headers={"content-type": PROTOBUF},
                        timeout=120)
    assert_refused(answer, 413, "limit")


@pytest.mark.parametrize("client", ["urllib", "requests"])
def test_64mib_body_from_a_client_that_writes_it_whole_first_gets_the_413(server: ServerProcess,
                                                                        still_serving: None, client: str) -> None:
    """urllib and requests write the whole body before they read the answer: they get the 413 (the server
    reads and drops up to 4x the limit before answering), not a reset connection, which exporters retry."""
    url, body, headers = f"{server.url}/v1/traces", b"\n" * (64 * MIB), {"Content-Type": PROTOBUF}
    if client == "urllib":
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=120)
        status, content = refused.value.code, refused.value.read()
    else:
        answer = requests.post(url, data=body, headers=headers, timeout=120)
        status, content = answer.status_code, answer.content
    assert status == 413
    assert str(16 * MIB) in Status.FromString(content).message


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("content_type", [PROTOBUF, JSON])
def test_compressed_exports_are_accepted(server: ServerProcess, still_serving: None, encoding: str,
                                         content_type: str) -> None:
    """gzip and deflate bodies, protobuf and JSON, are decoded and stored."""
    span = make_span(f"compressed-{encoding}")
    request = trace_request([span])
    raw = to_otlp_json(request) if content_type == JSON else request.SerializeToString()
    body = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    assert post(server.url, "traces", body, content_type=content_type, encoding=encoding).status_code == 200
    assert server.get(f"/api/v1/traces/{span.trace_id.hex()}").status_code == 200


def test_body_that_is_not_what_its_encoding_says_is_refused(server: ServerProcess, still_serving: None) -> None:
    """A plain body labelled gzip: 400 naming gzip."""
    assert_refused(post(server.url, "traces", CHAT_PB, encoding="gzip"), 400, "gzip")


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "", "multipart/form-data"])
def test_wrong_content_type_is_refused_with_415(server: ServerProcess, still_serving: None,
                                                content_type: str) -> None:
    """A content type other than protobuf or JSON: 415 naming the accepted types."""
    headers = {"content-type": content_type} if content_type else {}
    answer = httpx.post(f"{server.url}/v1/traces", content=CHAT_PB, headers=headers, timeout=30)
    assert_refused(answer, 415, "application/x-protobuf")


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br"])
def test_wrong_content_encoding_is_refused_with_415(server: ServerProcess, still_serving: None,
                                                    encoding: str) -> None:
    """A content encoding other than gzip/deflate/identity: 415 naming it."""
    assert_refused(post(server.url, "traces", CHAT_PB, encoding=encoding), 415, "content-encoding")


# --- gRPC ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.grpc_target, options=[("grpc.max_send_message_length", 256 * MIB)]) as ch:
        yield ch


def _raw_export(channel: grpc.Channel, body: bytes) -> trace_service_pb2.ExportTraceServiceResponse:
    """Send bytes as a trace Export call, bypassing client-side serialisation."""
    call = channel.unary_unary(TRACE_EXPORT, request_serializer=None,
                               response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString)
    return call(body, timeout=60)


@pytest.mark.parametrize("body", [os.urandom(512), CHAT_PB[: len(CHAT_PB) // 2]], ids=["random", "truncated"])
def test_grpc_malformed_protobuf_is_invalid_argument(channel: grpc.Channel, still_serving: None,
                                                     body: bytes) -> None:
    """Random or truncated bytes over gRPC: INVALID_ARGUMENT, as OTLP asks for bad data."""
    with pytest.raises(grpc.RpcError) as caught:
        _raw_export(channel, bytes(range(10, 40)) + body)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_grpc_anyvalue_nested_2000_deep_is_invalid_argument(channel: grpc.Channel, still_serving: None) -> None:
    """An AnyValue nested 2,000 deep over gRPC: INVALID_ARGUMENT."""
    with pytest.raises(grpc.RpcError) as caught:
        _raw_export(channel, _deep_body(2000, make_span("grpc-deep")))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_grpc_malformed_protobuf_is_refused_and_stores_nothing(server: ServerProcess, channel: grpc.Channel,
                                                               still_serving: None) -> None:
    """Whatever the code, a malformed gRPC export fails and stores nothing."""
    before = server.status()["spans"]
    with pytest.raises(grpc.RpcError) as caught:
        _raw_export(channel, bytes(range(10, 40)) + os.urandom(512))
    assert caught.value.code() != grpc.StatusCode.OK
    assert server.status()["spans"] == before


def test_grpc_message_over_the_limit_is_resource_exhausted(channel: grpc.Channel, still_serving: None) -> None:
    """A 20 MiB gRPC message (limit 16 MiB): RESOURCE_EXHAUSTED."""
    with pytest.raises(grpc.RpcError) as caught:
        _raw_export(channel, b"\n" + b"\0" * (20 * MIB))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_grpc_gzip_bomb_is_resource_exhausted(channel: grpc.Channel, still_serving: None) -> None:
    """A gzip-compressed gRPC message inflating to 64 MiB (20 KB on the wire): RESOURCE_EXHAUSTED."""
    call = channel.unary_unary(TRACE_EXPORT, request_serializer=None,
                               response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString)
    with pytest.raises(grpc.RpcError) as caught:
        call(b"\n" + b"\0" * (64 * MIB), timeout=60, compression=grpc.Compression.Gzip)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_grpc_logs_message_sent_to_trace_service_is_invalid_argument(channel: grpc.Channel,
                                                                      still_serving: None) -> None:
    """A logs export sent to the trace service does not decode as traces: INVALID_ARGUMENT."""
    with pytest.raises(grpc.RpcError) as caught:
        _raw_export(channel, (CORPUS / "otel" / "chat.logs.pb").read_bytes())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_grpc_empty_request_succeeds(channel: grpc.Channel, still_serving: None) -> None:
    """An empty gRPC export is a success with no partial_success."""
    assert not _raw_export(channel, b"").HasField("partial_success")


def test_grpc_spans_without_valid_ids_are_rejected_through_partial_success(
        server: ServerProcess, channel: grpc.Channel, still_serving: None) -> None:
    """Over gRPC: a zero trace id span is counted in rejected_spans with a reason, the good span stored."""
    good, bad = make_span("grpc-good"), make_span("grpc-zero", trace_id=bytes(16))
    response = trace_service_pb2_grpc.TraceServiceStub(channel).Export(trace_request([bad, good]), timeout=30)
    assert response.partial_success.rejected_spans == 1
    assert "trace_id" in response.partial_success.error_message
    assert server.get(f"/api/v1/traces/{good.trace_id.hex()}").status_code == 200


def test_grpc_log_records_with_bad_ids_are_rejected_through_partial_success(
        channel: grpc.Channel, still_serving: None) -> None:
    """Over gRPC: a log record with a 5-byte span id is rejected by count and reason."""
    records = [make_log("grpc good log"), make_log("grpc bad log", span_id=b"\x01" * 5)]
    response = logs_service_pb2_grpc.LogsServiceStub(channel).Export(log_request(records), timeout=30)
    assert response.partial_success.rejected_log_records == 1
    assert "span_id" in response.partial_success.error_message


def test_grpc_huge_attributes_are_truncated(server: ServerProcess, channel: grpc.Channel,
                                           still_serving: None) -> None:
    """Over gRPC: 5,000 attributes and a 10 MB value follow the same truncation rule as HTTP."""
    span = make_span("grpc-huge", attrs={"prompt": "q" * 10_000_000})
    span.attributes.extend(KeyValue(key=f"a{i}", value=AnyValue(bool_value=True)) for i in range(5_000))
    trace_service_pb2_grpc.TraceServiceStub(channel).Export(trace_request([span]), timeout=60)
    stored = server.get(f"/api/v1/traces/{span.trace_id.hex()}").json()["spans"][0]["attributes"]
    assert len(stored["prompt"]) == 65_536
    assert stored["llmlens.dropped_attributes"] == str(5_001 - 1024)


# --- overload ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_queue_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose write queue holds 1000 rows, so one 1000-span export fills it."""
    server = ServerProcess(tmp_path_factory.mktemp("overload") / "data",
                           extra_args=["--max-pending-rows", "1000"]).start()
    yield server
    server.terminate()


# Small exports leave gaps: with none pending, the big export gets into the queue (it is refused
# when it meets a pending one), and small ones then arrive while it fills the queue. Without gaps,
# once commits got faster, a small export was nearly always pending and only the big one was refused.
_GAP_S = 0.03


def _small_http_exports(server: ServerProcess, stop: threading.Event, acked: list[int], refused: list) -> None:
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            answer = post(server.url, "traces", trace_request([make_span("small"), make_span("small")]), client=client)
            if answer.status_code == 200:
                acked.append(2)
            else:
                retry_after = answer.headers.get("retry-after", "")
                ok = answer.status_code in (429, 503) and retry_after.isdigit() and int(retry_after) >= 1
                refused.append((ok, f"{answer.status_code} retry-after={retry_after!r}", error_status(answer).message))
            stop.wait(_GAP_S)


def _small_grpc_exports(server: ServerProcess, stop: threading.Event, acked: list[int], refused: list) -> None:
    with grpc.insecure_channel(server.grpc_target) as ch:
        stub = trace_service_pb2_grpc.TraceServiceStub(ch)
        while not stop.is_set():
            try:
                stub.Export(trace_request([make_span("small"), make_span("small")]), timeout=30)
            except grpc.RpcError as exc:
                refused.append((exc.code() == grpc.StatusCode.UNAVAILABLE, str(exc.code()), exc.details()))
            else:
                acked.append(2)
            stop.wait(_GAP_S)


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_full_write_queue_refuses_retryably_and_stores_only_what_it_acknowledged(
        small_queue_server: ServerProcess, transport: str) -> None:
    """Small exports racing a 1000-span export into a 1000-row queue: HTTP gets 429/503 + Retry-After,
    gRPC gets UNAVAILABLE, each naming the full queue; exactly the acknowledged spans are stored."""
    server = small_queue_server
    before = server.status()["spans"]
    sender = _small_http_exports if transport == "http" else _small_grpc_exports
    acked: list[int] = []
    refused: list[tuple[bool, str, str]] = []  # (retryable as OTLP says, status, message)
    for _ in range(60):
        stop = threading.Event()
        thread = threading.Thread(target=sender, args=(server, stop, acked, refused))
        thread.start()
        time.sleep(0.05)
        big = [make_span("big", attrs={"pad": "x" * 2000}) for _ in range(1000)]
        answer = post(server.url, "traces", trace_request(big))
        stop.set()
        thread.join(60)
        if answer.status_code == 200:
            acked.append(len(big))
        else:
            assert answer.status_code in (429, 503) and answer.headers["retry-after"]
        if refused:
            break
    assert refused, f"no {transport} export was ever refused: the queue never filled"
    assert all(ok and "queue" in message for ok, _, message in refused), refused[:3]
    assert server.status()["spans"] - before == sum(acked)


# --- query parameters ----------------------------------------------------------------------

BAD_PARAMETERS = [
    ("/api/v1/traces", {"start": "yesterday"}, "start"),
    ("/api/v1/traces", {"end": "2024-13-45T00:00:00Z"}, "end"),
    ("/api/v1/traces", {"start": "-1h", "end": "-2h"}, "start"),
    ("/api/v1/traces", {"start": "-900d"}, "start"),
    ("/api/v1/traces", {"limit": "-1"}, "limit"),
    ("/api/v1/traces", {"limit": "0"}, "limit"),
    ("/api/v1/traces", {"limit": "1" + "0" * 30}, "limit"),
    ("/api/v1/traces", {"limit": "ten"}, "limit"),
    ("/api/v1/traces", {"min_duration_ms": "-5"}, "min_duration_ms"),
    ("/api/v1/traces", {"max_duration_ms": "1e400"}, "max_duration_ms"),
    ("/api/v1/traces", {"min_duration_ms": "nan"}, "min_duration_ms"),
    ("/api/v1/traces", {"status": "'; DROP TABLE otel_traces; --"}, "status"),
    ("/api/v1/traces", {"attr": "no-colon"}, "attr"),
    ("/api/v1/traces", {"attr": ":value"}, "attr"),
    ("/api/v1/traces", {"cursor": "not a cursor"}, "cursor"),
    ("/api/v1/traces", {"cursor": "W10"}, "cursor"),
    ("/api/v1/traces", {"cursor": ""}, "cursor"),
    ("/api/v1/traces", {"service": "s" * 5000}, "service"),
    ("/api/v1/traces/xyz", {}, "trace_id"),
    ("/api/v1/traces/" + "g" * 32, {}, "trace_id"),
    ("/api/v1/traces/" + "a" * 33, {}, "trace_id"),
    ("/api/v1/traces/' OR 1=1 --", {}, "trace_id"),
    ("/api/v1/llm/stats", {"group_by": "bogus"}, "group_by"),
    ("/api/v1/llm/stats", {"group_by": "model; DROP TABLE llm_calls"}, "group_by"),
    ("/api/v1/llm/stats", {"step": "0s"}, "step"),
    ("/api/v1/llm/stats", {"step": "fast"}, "step"),
    ("/api/v1/llm/stats", {"step": "1s", "start": "-30d"}, "step"),
    ("/api/v1/llm/stats", {"step": "9" * 40 + "w"}, "step"),
    ("/api/v1/logs", {"severity": "loud"}, "severity"),
    ("/api/v1/logs", {"severity": "99"}, "severity"),
    ("/api/v1/logs", {"trace_id": "zz"}, "trace_id"),
    ("/api/v1/logs", {"limit": "100000"}, "limit"),
    ("/api/v1/metrics", {"start": "bad"}, "start"),
    ("/api/v1/metrics/x/series", {"limit": "0"}, "limit"),
    ("/api/v1/metrics/" + "m" * 600 + "/series", {}, "name"),
]


@pytest.mark.parametrize(("path", "params", "parameter"), BAD_PARAMETERS,
                         ids=[f"{p.split('/')[3]}-{'-'.join(q) or 'path'}-{i}" for i, (p, q, _) in
                              enumerate(BAD_PARAMETERS)])
def test_bad_parameter_is_400_naming_it(server: ServerProcess, path: str, params: dict, parameter: str) -> None:
    """Each bad query parameter: 400 with {"error": {code, message, parameter}} naming it."""
    answer = httpx.get(server.url + path, params=params, timeout=30)
    assert answer.status_code == 400, f"{answer.status_code}: {answer.text[:300]}"
    error = answer.json()["error"]
    assert error["code"] == "bad_parameter" and error["message"]
    assert error["parameter"] == parameter


OUT_OF_RANGE = [
    pytest.param({"start": "-999999999999d"}, "start", id="huge-relative-start"),
    pytest.param({"end": "-99999999999999999999w"}, "end", id="huge-relative-end"),
    pytest.param({"start": "9999-12-31T00:00:00Z", "end": "9999-12-31T23:00:00Z"}, "start", id="year-9999"),
    pytest.param({"start": "0001-01-01T00:00:00Z", "end": "0001-01-02T00:00:00Z"}, "start", id="year-1"),
    pytest.param({"cursor": "WyJub3QgYSB0aW1lIiwgIjAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwIl0"}, "cursor",
                 id="cursor-with-bad-time"),
]


@pytest.mark.parametrize(("params", "parameter"), OUT_OF_RANGE)
def test_out_of_range_parameter_is_400_naming_it(server: ServerProcess, params: dict, parameter: str) -> None:
    """Times out of every range and a well-formed cursor with a bad time: 400 naming the parameter, never 5xx."""
    answer = httpx.get(f"{server.url}/api/v1/traces", params=params, timeout=30)
    assert answer.status_code == 400, f"{answer.status_code}: {answer.text[:300]}"
    assert answer.json()["error"]["parameter"] == parameter


HOSTILE_STRINGS = ["' OR '1'='1", "x'); DROP TABLE otel_traces; --", "\\'", "{start:String}", "%",
                   "\t\x00\n", "é€😀"]
STRING_FILTERS = [("/api/v1/traces", k) for k in ("service", "name", "model", "attr")] + \
                 [("/api/v1/llm/stats", k) for k in ("service", "app", "department", "model", "provider",
                                                     "operation", "user", "session")] + \
                 [("/api/v1/logs", k) for k in ("service", "q")] + [("/api/v1/metrics/probe.metric/series", "service")]


@pytest.mark.parametrize(("path", "key"), STRING_FILTERS, ids=[f"{p.split('/')[3]}-{k}" for p, k in STRING_FILTERS])
def test_sql_fragments_in_string_filters_match_nothing(server: ServerProcess, path: str, key: str) -> None:
    """Quotes, SQL fragments, placeholders and control characters in every string filter: 200 with no rows
    (or 400/404), never a 5xx, and the tables are still there."""
    for text in HOSTILE_STRINGS:
        value = f"service.name:{text}" if key == "attr" else text
        answer = httpx.get(server.url + path, params={key: value, "start": "-1d"}, timeout=30)
        assert answer.status_code in (200, 400, 404), f"{key}={text!r}: {answer.status_code} {answer.text[:200]}"
        if answer.status_code == 200:
            body = answer.json()
            rows = body.get("items", body.get("groups", body.get("series")))
            assert rows == [], f"{key}={text!r} matched rows: {str(rows)[:200]}"
    assert server.status()["spans"] > 0


@pytest.mark.parametrize("text", HOSTILE_STRINGS[:6] + ["a/b", "..", "%2e%2e"])
def test_sql_fragments_in_metric_name_path_are_404(server: ServerProcess, text: str) -> None:
    """A hostile metric name in the URL path: 404 not found (no such metric), never a 5xx."""
    answer = httpx.get(f"{server.url}/api/v1/metrics/{quote(text, safe='')}/series", timeout=30)
    assert answer.status_code in (400, 404), f"{answer.status_code}: {answer.text[:200]}"


def test_nothing_accepted_earlier_was_lost(server: ServerProcess) -> None:
    """After all the hostile input, the first good trace is still whole."""
    listed = httpx.get(f"{server.url}/api/v1/traces", params={"name": "before-the-storm", "start": "-1d"}, timeout=30)
    assert listed.status_code == 200 and len(listed.json()["items"]) == 1


ODD_VALUES = ["", " ", "\x00", "-1", "1e999", "é€", "x" * 5000]
ORDINARY = "0" * 32  # a name, a number and a hex trace id alike


def _odd_requests(schema: dict) -> Iterator[tuple[str, str, str, dict[str, str], str]]:
    """(route, parameter, url, query, value) for each odd value of each parameter of each GET route."""
    for path, operations in schema["paths"].items():
        parameters = operations.get("get", {}).get("parameters", [])
        for parameter in parameters:
            for value in ODD_VALUES:
                query: dict[str, str] = {}
                if parameter["in"] == "path":
                    if not value.strip():
                        continue  # an empty path segment is another route
                    url = path.replace("{" + parameter["name"] + "}", quote(value, safe=""))
                else:
                    url, query = path, {parameter["name"]: value}
                for other in parameters:  # other path and required parameters get an ordinary value
                    if other["in"] == "path" and other is not parameter:
                        url = url.replace("{" + other["name"] + "}", "probe")
                    elif other["in"] == "query" and other.get("required") and other is not parameter:
                        query[other["name"]] = ORDINARY  # so the answer is about the odd one
                yield path, parameter["name"], url, query, value


def test_odd_values_of_every_api_parameter_are_answered_without_a_5xx(server: ServerProcess) -> None:
    """Every parameter of every GET route the API documents (read from its OpenAPI schema, so new routes
    are covered), given empty, blank, NUL, negative, huge, non-ASCII and over-long values: never a 5xx,
    and a 400 names the parameter."""
    schema = httpx.get(f"{server.url}/openapi.json", timeout=30).json()

    def check(request: tuple[str, str, str, dict[str, str], str]) -> str | None:
        path, name, url, query, value = request
        answer = httpx.get(server.url + url, params=query, timeout=60)
        named = answer.status_code != 400 or answer.json()["error"]["parameter"] == name
        if answer.status_code >= 500 or not named:
            return f"{path} {name}={value[:20]!r}: {answer.status_code} {answer.text[:160]}"
        return None

    probes = list(_odd_requests(schema))
    assert len(probes) > 300, "the schema lists fewer parameters than the API has"
    with ThreadPoolExecutor(4) as pool:
        failures = [failure for failure in pool.map(check, probes) if failure]
    assert not failures, "\n".join(failures)
