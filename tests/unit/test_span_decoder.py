"""The C span decoder (fast path) against protobuf's parser (the path of record).

Whatever body the fast path takes must give exactly what parsing with protobuf gives; anything
protobuf refuses, the fast path must decline (None) so the caller reports protobuf's error.
Compared on the real corpus, on generated requests, on mutated bytes and on hand-made edge cases.
"""

from __future__ import annotations

import gc
import json
import random
import sys

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from llmlens.server.decode import attributes, spans
from llmlens.server.decode.messages import decode_request
from llmlens.server.normalise import build_cost_model
from llmlens.server.receive.workers import build_batch
from tests.conftest import CORPUS
from tests.integration.otlp_requests import make_span, new_span_id, new_trace_id, trace_request


def protobuf_path(body: bytes) -> list | None:
    """What the protobuf path reads from a body, or None where protobuf refuses it."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RecursionError):
        return None
    return spans.from_message(request)


def assert_same(body: bytes) -> list | None:
    """The fast path gives protobuf's result or declines; it never takes what protobuf refuses."""
    fast = spans.decode(body)
    expected = protobuf_path(body)
    if expected is None:
        assert fast is None, "the fast path took a body protobuf refuses"
    elif fast is not None:
        assert fast == expected
    return fast


def _spans(resources: list) -> list[spans.Span]:
    """Every span of a decoded request, with named fields (the C side returns plain tuples)."""
    return [spans.Span._make(s) for _, scopes in resources for _, _, group in scopes for s in group]


def test_the_fast_path_is_built() -> None:
    assert spans.FAST_PATH, "the C span decoder was not built: is a C compiler installed? (pip install -e . builds it)"


def _corpus_trace_bodies() -> list[bytes]:
    out = []
    for path in sorted(CORPUS.glob("*/*traces*")):
        if path.suffix == ".pb":
            out.append(path.read_bytes())
        elif path.suffix == ".json":
            out.append(decode_request(ExportTraceServiceRequest, path.read_bytes(), "json").SerializeToString())
    return out


def test_every_corpus_body_decodes_as_protobuf_reads_it() -> None:
    bodies = _corpus_trace_bodies()
    assert len(bodies) >= 8
    for body in bodies:
        fast = assert_same(body)
        assert fast is not None, "a real instrumentor's body fell back to protobuf"
        assert _spans(fast)


# ---- generated requests ---------------------------------------------------------------------

_text = st.text(max_size=12)
_scalar = st.one_of(
    _text.map(lambda s: AnyValue(string_value=s)),
    st.booleans().map(lambda b: AnyValue(bool_value=b)),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: AnyValue(int_value=i)),
    st.floats(allow_nan=True).map(lambda f: AnyValue(double_value=f)),
    st.binary(max_size=6).map(lambda b: AnyValue(bytes_value=b)),
    st.just(AnyValue()),
)
_any = st.recursive(_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3).map(lambda vs: AnyValue(array_value=ArrayValue(values=vs))),
    st.lists(st.tuples(_text, inner), max_size=3).map(
        lambda kvs: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs]))),
), max_leaves=12)
_kvs = st.lists(st.tuples(st.sampled_from(["a", "b", "gen_ai.request.model", "service.name", ""]) | _text, _any),
                max_size=6).map(lambda kvs: [KeyValue(key=k, value=v) for k, v in kvs])
_id = st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=20))


@st.composite
def _span(draw) -> Span:
    span = Span(trace_id=draw(_id), span_id=draw(st.binary(min_size=8, max_size=8) | st.binary(max_size=9)),
                parent_span_id=draw(st.binary(max_size=8)), trace_state=draw(_text), name=draw(_text),
                kind=draw(st.integers(-2, 7)), start_time_unix_nano=draw(st.integers(0, 2**64 - 1)),
                end_time_unix_nano=draw(st.integers(0, 2**64 - 1)), attributes=draw(_kvs),
                dropped_attributes_count=draw(st.integers(0, 3)), flags=draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        span.status.CopyFrom(Status(code=draw(st.integers(-1, 4)), message=draw(_text)))
    for _ in range(draw(st.integers(0, 2))):
        span.events.add(time_unix_nano=draw(st.integers(0, 2**64 - 1)), name=draw(_text)).attributes.extend(draw(_kvs))
    for _ in range(draw(st.integers(0, 2))):
        span.links.add(trace_id=draw(_id), span_id=draw(st.binary(max_size=8)),
                       trace_state=draw(_text)).attributes.extend(draw(_kvs))
    return span


@st.composite
def _request(draw) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rs = request.resource_spans.add(schema_url=draw(_text))
        if draw(st.booleans()):
            rs.resource.attributes.extend(draw(_kvs))
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add()
            if draw(st.booleans()):
                ss.scope.name, ss.scope.version = draw(_text), draw(_text)
                ss.scope.attributes.extend(draw(_kvs))
            ss.spans.extend(draw(st.lists(_span(), max_size=3)))
    return request


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_request())
def test_generated_requests_decode_as_protobuf_reads_them(request: ExportTraceServiceRequest) -> None:
    body = request.SerializeToString()
    fast = assert_same(body)
    assert fast is not None, "a well-formed request without merged fields fell back"


# ---- mutated bytes ----------------------------------------------------------------------------

def _rich_request() -> bytes:
    trace_id = new_trace_id()
    root = make_span("root", trace_id=trace_id, attrs={"http.route": "/chat", "n": 3, "ok": True, "x": 0.25})
    child = make_span("chat gpt-4o", trace_id=trace_id, parent=root.span_id, error=True, attrs={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 12,
        "gen_ai.response.finish_reasons": ["stop"], "blob": b"\x00\x01", "nested": {"a": [1, {"b": "c"}]}})
    child.events.add(time_unix_nano=child.start_time_unix_nano + 5, name="gen_ai.evaluation.result").attributes.extend(
        [KeyValue(key="gen_ai.evaluation.score.value", value=AnyValue(double_value=0.5))])
    child.links.add(trace_id=new_trace_id(), span_id=new_span_id(), trace_state="k=v")
    return trace_request([root, child], resource={"llmlens.app": "support"}).SerializeToString()


def test_mutated_bodies_are_decoded_as_protobuf_reads_them_or_declined() -> None:
    """Truncations, flipped bytes and inserted bytes: 6,000 hostile variants of a rich body."""
    rng = random.Random(7)
    body = _rich_request()
    taken = declined = 0
    for i in range(6000):
        data = bytearray(body)
        if i % 3 == 0:
            data = data[: rng.randrange(len(data))]
        elif i % 3 == 1:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            at = rng.randrange(len(data))
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
        fast = assert_same(bytes(data))
        taken += fast is not None
        declined += fast is None
    assert taken > 200 and declined > 2000  # both outcomes were exercised


def test_random_bytes_never_crash_the_decoder() -> None:
    rng = random.Random(11)
    for size in list(range(64)) + [1000, 100_000]:
        assert_same(rng.randbytes(size))


# ---- constructs the fast path leaves to protobuf ----------------------------------------------

def _tag(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(field: int, payload: bytes) -> bytes:
    return _tag(field, 2) + _varint(len(payload)) + payload


def _wrap_span(span_bytes: bytes) -> bytes:
    """A request with one ResourceSpans, one ScopeSpans and this encoded span."""
    return _field(1, _field(2, _field(2, span_bytes)))


_GOOD_SPAN = make_span("s").SerializeToString()


@pytest.mark.parametrize(("case", "body"), [
    ("status twice (protobuf merges them)", _wrap_span(_GOOD_SPAN + _field(15, b"\x18\x02") + _field(15, b"\x12\x01x"))),
    ("resource twice", _field(1, _field(1, b"") + _field(1, b"") + _field(2, _field(2, _GOOD_SPAN)))),
    ("a group wire type", _wrap_span(_GOOD_SPAN + _tag(20, 3) + _tag(20, 4))),
    ("name sent as a varint", _wrap_span(_GOOD_SPAN + _tag(5, 0) + b"\x01")),
    ("invalid UTF-8 in a key", _wrap_span(_GOOD_SPAN + _field(9, _field(1, b"\xff\xfe")))),
    ("invalid UTF-8 in a schema url", _field(1, _field(3, b"\xc3\x28"))),
    ("a value with two oneof members", _wrap_span(_GOOD_SPAN + _field(9, _field(1, b"k") + _field(
        2, _field(1, b"x") + _tag(3, 0) + b"\x05")))),
    ("field number 0", _tag(0, 0) + b"\x00"),
    ("a varint of 11 bytes", _wrap_span(_GOOD_SPAN + _tag(6, 0) + b"\xff" * 10 + b"\x01")),
])
def test_declined_constructs_keep_protobufs_result(case: str, body: bytes) -> None:
    assert spans.decode(body) is None, case
    cost = build_cost_model()
    expected = protobuf_path(body)
    if expected is None:
        with pytest.raises(ValueError):
            build_batch("traces", body, "protobuf", cost)
    else:  # the whole pipeline gives protobuf's reading of it
        assert build_batch("traces", body, "protobuf", cost).accepted == len(_spans(expected))


def test_anyvalues_nested_past_the_depth_cap_are_left_to_protobuf() -> None:
    value = AnyValue(string_value="leaf")
    for _ in range(attributes.MAX_DEPTH + 2):
        value = AnyValue(array_value=ArrayValue(values=[value]))
    span = make_span("deep")
    span.attributes.append(KeyValue(key="deep", value=value))
    body = trace_request([span]).SerializeToString()
    assert spans.decode(body) is None
    stored = _spans(protobuf_path(body))[0].attributes["deep"]
    assert stored.count("[") == attributes.MAX_DEPTH and "…" in stored

    shallow = make_span("shallow")
    value = AnyValue(string_value="leaf")
    for _ in range(attributes.MAX_DEPTH - 1):
        value = AnyValue(array_value=ArrayValue(values=[value]))
    shallow.attributes.append(KeyValue(key="deep", value=value))
    assert assert_same(trace_request([shallow]).SerializeToString()) is not None


# ---- the truncation rule ------------------------------------------------------------------------

def test_caps_apply_alike_on_both_paths() -> None:
    """Attribute count, key length and value length caps (README, 'Truncation')."""
    many = make_span("many")
    many.attributes.extend(KeyValue(key=f"k{i}", value=AnyValue(int_value=i)) for i in range(5000))
    long_key = make_span("long key", attrs={"k" * 5000: "v", "k" * 1024 + "other": "w"})
    long_value = make_span("long value", attrs={"big": "x" * 10_000_000, "array": ["y" * 70_000]})
    body = trace_request([many, long_key, long_value]).SerializeToString()
    fast = assert_same(body)
    assert fast is not None
    by_name = {s.name: s for s in _spans(fast)}
    kept = by_name["many"].attributes
    assert len(kept) == attributes.MAX_ATTRIBUTES + 1
    assert kept[attributes.DROPPED_KEY] == str(5000 - attributes.MAX_ATTRIBUTES)
    assert list(by_name["long key"].attributes) == ["k" * attributes.MAX_KEY_CHARS]
    assert by_name["long key"].attributes["k" * attributes.MAX_KEY_CHARS] == "w"  # the later key wins
    for value in by_name["long value"].attributes.values():
        assert len(value) == attributes.MAX_VALUE_CHARS and value.endswith(attributes.TRUNCATED)


def test_values_are_stored_as_the_exporter_stores_them() -> None:
    span = make_span("kinds", attrs={"s": "text", "i": -42, "f": 0.1, "b": False, "bytes": b"\xab\xcd",
                                     "arr": [1, "two", 3.0], "map": {"k": [True]}, "empty": ""})
    span.attributes.append(KeyValue(key="unset"))
    fast = assert_same(trace_request([span]).SerializeToString())
    stored = _spans(fast)[0].attributes
    assert stored == {"s": "text", "i": "-42", "f": "0.1", "b": "false", "bytes": "abcd",
                      "arr": json.dumps([1, "two", 3.0]), "map": '{"k": [true]}', "empty": "", "unset": ""}


def test_decoding_leaves_nothing_allocated() -> None:
    """Taken and declined bodies alike: no Python object outlives a decode (reference counts in C)."""
    rng = random.Random(3)
    body = _rich_request()
    variants = [body]
    for _ in range(600):
        data = bytearray(body)
        data[rng.randrange(len(data))] = rng.randrange(256)
        variants.append(bytes(data[: rng.randrange(len(data) // 2, len(data) + 1)]))
    for variant in variants:  # warm up interpreter caches
        spans.decode(variant)
    gc.collect()
    before = sys.getallocatedblocks()
    for _ in range(5):
        for variant in variants:
            spans.decode(variant)
    gc.collect()
    assert sys.getallocatedblocks() - before < 100  # 3,005 decodes; a leak would leave thousands


def _slot(text: str) -> int:
    """The decoder's string-cache slot of a short ASCII string (FNV-1a over its bytes, 4,096 slots)."""
    h = 2166136261
    for byte in text.encode():
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h & 4095


def test_strings_sharing_a_cache_slot_stay_distinct() -> None:
    """Short strings are reused from a small cache keyed by a hash of their bytes: two strings
    that land in one slot, and non-ASCII ones, must still come back as themselves."""
    seen: dict[int, str] = {}
    for i in range(10_000):
        key = f"attr.{i}"
        if _slot(key) in seen:
            first, second = seen[_slot(key)], key
            break
        seen[_slot(key)] = key
    attrs = {first: "one", second: "two", "ключ": "значение", "naïve": "café", "k": first}
    for _ in range(3):  # alternate the two strings through their slot
        fast = assert_same(trace_request([make_span(first, attrs=attrs), make_span(second, attrs=attrs)])
                           .SerializeToString())
        assert [s.name for s in _spans(fast)] == [first, second]
        assert _spans(fast)[1].attributes == {k: v for k, v in attrs.items()}
