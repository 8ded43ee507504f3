"""Profiles on a real server: Pyroscope's /ingest (pprof, folded, multipart) and Push (protobuf and
JSON), OTLP profiles over HTTP and gRPC, each giving the exact flame graph of a known tree; filters
by span (and the spans below it), span name, trace and thread; the diff of two known profiles; a
resent request counted once; hostile bodies refused with a clear 4xx while the server keeps serving;
the real `pyroscope-io` client pushing to llmlens, and pyroscope-otel's span linking."""

from __future__ import annotations

import base64
import gzip
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.profiles.v1development import (
    profiles_service_pb2,
    profiles_service_pb2_grpc,
)

from tests.integration.otlp_requests import make_span, post, to_otlp_json, trace_request
from tests.integration.profile_bodies import PprofBuilder, names, otlp_profiles_request, push_request
from tests.server_process import ServerProcess

MAIN, WORK, LEAF, OTHER = ("main", "app.py", 1), ("work", "app.py", 10), ("leaf", "lib.py", 5), ("other", "app.py", 20)
M, W, L, OT = "main (app.py:1)", "work (app.py:10)", "leaf (lib.py:5)", "other (app.py:20)"
SPAN_ID, TRACE_ID = "00f067aa0ba902b7", "4bf92f3577b34da6a3ce929d0e0e4736"


def now_s() -> int:
    return int(time.time())


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def flamegraph(server: ServerProcess, service: str, **params) -> dict:
    answer = server.get("/api/v1/profiles/flamegraph", service=service, start="-2h", end="now", **params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def ingest(server: ServerProcess, name: str, body: bytes, **params) -> httpx.Response:
    return httpx.post(server.url + "/ingest", params={"name": name, **params}, content=body, timeout=60)


def known_pprof(time_ns: int = 0) -> PprofBuilder:
    """main -> work -> leaf 7, main -> work 3, main -> other 2 (samples), with span, trace and thread."""
    return (PprofBuilder(time_ns)
            .sample([MAIN, WORK, LEAF], 7, {"span_id": SPAN_ID, "trace_id": TRACE_ID, "thread_name": "worker-1"})
            .sample([MAIN, WORK], 3, {"thread_name": "MainThread"})
            .sample([MAIN, OTHER], 2, {"thread_name": "MainThread"}))


KNOWN_TREE = {M: (12, 0, {W: (10, 3, {L: (7, 7, {})}), OT: (2, 2, {})})}


def test_ingest_folded_lines_give_the_exact_tree(llmlens_server: ServerProcess) -> None:
    body = b"main;work;leaf 7\nmain;work 3\nmain;other 2\n"
    params = {"from": now_s() - 10, "until": now_s(), "sampleRate": 100, "spyName": "pyspy"}
    for _ in range(2):  # the second is a resend: counted once
        answer = ingest(llmlens_server, "folded-svc.cpu{env=test}", body, **params)
        assert answer.status_code == 200, answer.text
    tree = flamegraph(llmlens_server, "folded-svc")
    assert tree["name"] == "total" and tree["value"] == 12
    assert names(tree) == {"main": (12, 0, {"work": (10, 3, {"leaf": (7, 7, {})}), "other": (2, 2, {})})}
    # format=lines: one sample a line, no counts
    assert ingest(llmlens_server, "lines-svc.cpu", b"a;b\na;b\na;c\n", format="lines").status_code == 200
    assert names(flamegraph(llmlens_server, "lines-svc")) == {"a": (3, 0, {"b": (2, 2, {}), "c": (1, 1, {})})}


def test_ingest_pprof_gives_the_exact_tree_and_filters_by_span_trace_and_thread(llmlens_server: ServerProcess) -> None:
    service = "pprof-svc"
    answer = ingest(llmlens_server, f"{service}.cpu{{service_name={service}}}", known_pprof().bytes(),
                    format="pprof", **{"from": now_s() - 10, "until": now_s(), "sampleRate": 100, "spyName": "llmlens"})
    assert answer.status_code == 200, answer.text
    assert names(flamegraph(llmlens_server, service)) == KNOWN_TREE
    only_span = {M: (7, 0, {W: (7, 0, {L: (7, 7, {})})})}
    assert names(flamegraph(llmlens_server, service, span_id=SPAN_ID)) == only_span
    assert names(flamegraph(llmlens_server, service, trace_id=TRACE_ID)) == only_span
    assert names(flamegraph(llmlens_server, service, thread="MainThread")) == {M: (5, 0, {W: (3, 3, {}), OT: (2, 2, {})})}
    assert flamegraph(llmlens_server, service, span_id="ffffffffffffffff") == {"name": "total", "value": 0,
                                                                               "children": []}
    # max_nodes keeps the heaviest nodes: main (12) and work (10).
    assert names(flamegraph(llmlens_server, service, max_nodes=2)) == {M: (12, 0, {W: (10, 3, {})})}
    services = llmlens_server.get("/api/v1/profiles/services").json()["services"]
    assert {"service": service, "profile_type": "process_cpu", "value": 12} in [
        {k: s[k] for k in ("service", "profile_type", "value")} for s in services]


def test_ingest_multipart_form_as_the_go_client_sends_it(llmlens_server: ServerProcess) -> None:
    answer = httpx.post(llmlens_server.url + "/ingest",
                        params={"name": "multipart-svc.cpu", "from": now_s() - 10, "until": now_s()},
                        files={"profile": ("profile.pprof", known_pprof().bytes(), "application/octet-stream")},
                        timeout=60)
    assert answer.status_code == 200, answer.text
    assert names(flamegraph(llmlens_server, "multipart-svc")) == KNOWN_TREE


def test_push_protobuf_and_json_and_a_resend_is_counted_once(llmlens_server: ServerProcess) -> None:
    url = llmlens_server.url + "/push.v1.PusherService/Push"
    body = push_request("push-svc", [known_pprof(time.time_ns()).bytes()]).SerializeToString()
    headers = {"content-type": "application/proto", "content-encoding": "gzip", "connect-protocol-version": "1"}
    for _ in range(2):  # the second is a resend of the same bytes
        answer = httpx.post(url, content=gzip.compress(body), headers=headers, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/proto")
    assert names(flamegraph(llmlens_server, "push-svc")) == KNOWN_TREE

    document = {"series": [{"labels": [{"name": "service_name", "value": "push-json-svc"},
                                       {"name": "__name__", "value": "process_cpu"}],
                            "samples": [{"rawProfile": base64.b64encode(known_pprof(time.time_ns()).bytes()).decode(),
                                         "ID": "x"}]}]}
    answer = httpx.post(url, json=document, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {}
    assert names(flamegraph(llmlens_server, "push-json-svc")) == KNOWN_TREE

    answer = httpx.post(url, content=b"\xff\xfe not protobuf", headers={"content-type": "application/proto"})
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_argument"  # a Connect error


def test_otlp_profiles_over_http_and_grpc(llmlens_server: ServerProcess) -> None:
    stacks = {(MAIN, WORK, LEAF): 7, (MAIN, WORK): 3, (MAIN, OTHER): 2}
    trace_id, span_id = bytes.fromhex(TRACE_ID), bytes.fromhex("1111111111111111")
    request = otlp_profiles_request("otlp-http-svc", stacks, time.time_ns(), span=(trace_id, span_id))
    answer = httpx.post(llmlens_server.url + "/v1development/profiles", content=request.SerializeToString(),
                        headers={"content-type": "application/x-protobuf"}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert names(flamegraph(llmlens_server, "otlp-http-svc")) == KNOWN_TREE
    assert flamegraph(llmlens_server, "otlp-http-svc", span_id="1111111111111111")["value"] == 12

    # OTLP/JSON: ids in hex, as OTLP/JSON writes them.
    request = otlp_profiles_request("otlp-json-svc", stacks, time.time_ns(), span=(trace_id, span_id))
    answer = httpx.post(llmlens_server.url + "/v1development/profiles", content=to_otlp_json(request),
                        headers={"content-type": "application/json"}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert names(flamegraph(llmlens_server, "otlp-json-svc", span_id="1111111111111111")) == KNOWN_TREE

    with grpc.insecure_channel(llmlens_server.grpc_target) as channel:
        stub = profiles_service_pb2_grpc.ProfilesServiceStub(channel)
        reply = stub.Export(otlp_profiles_request("otlp-grpc-svc", stacks, time.time_ns()), timeout=60)
    assert isinstance(reply, profiles_service_pb2.ExportProfilesServiceResponse)
    assert names(flamegraph(llmlens_server, "otlp-grpc-svc")) == KNOWN_TREE


def test_samples_inside_a_span_include_the_spans_below_it(llmlens_server: ServerProcess) -> None:
    """The SDK labels a sample with the innermost span: the parent's flame graph must include its
    child's samples, by span id and by span name."""
    service = "nested-svc"
    trace = os.urandom(16)
    parent, child, other = os.urandom(8), os.urandom(8), os.urandom(8)
    start = time.time_ns() - 5 * 10**9
    spans = [make_span("handle", trace_id=trace, span_id=parent, start_ns=start, duration_ms=3000),
             make_span("retrieve", trace_id=trace, span_id=child, parent=parent, start_ns=start + 10**9, duration_ms=1000),
             make_span("other", trace_id=os.urandom(16), span_id=other, start_ns=start, duration_ms=1000)]
    assert post(llmlens_server.url, "traces", trace_request(spans, service=service)).status_code == 200
    profile = (PprofBuilder(start)
               .sample([MAIN, WORK], 4, {"span_id": parent.hex(), "trace_id": trace.hex()})
               .sample([MAIN, WORK, LEAF], 6, {"span_id": child.hex(), "trace_id": trace.hex()})
               .sample([MAIN, OTHER], 5, {"span_id": other.hex()}))
    assert ingest(llmlens_server, f"{service}.cpu", profile.bytes(), format="pprof").status_code == 200
    inside = {M: (10, 0, {W: (10, 4, {L: (6, 6, {})})})}
    assert names(flamegraph(llmlens_server, service, span_id=parent.hex())) == inside
    assert names(flamegraph(llmlens_server, service, span_id=parent.hex(), trace_id=trace.hex())) == inside
    assert names(flamegraph(llmlens_server, service, span_name="handle")) == inside
    assert names(flamegraph(llmlens_server, service, span_name="retrieve")) == {M: (6, 0, {W: (6, 0, {L: (6, 6, {})})})}


def test_diff_of_two_known_profiles(llmlens_server: ServerProcess) -> None:
    service = "diff-svc"
    early, late = now_s() - 3000, now_s() - 60
    base = PprofBuilder().sample([MAIN, WORK], 8).sample([MAIN, OTHER], 2)
    comp = PprofBuilder().sample([MAIN, WORK], 3).sample([MAIN, OTHER], 6).sample([MAIN, WORK, LEAF], 1)
    for at, profile in ((early, base), (late, comp)):
        assert ingest(llmlens_server, f"{service}.cpu", profile.bytes(), format="pprof",
                      **{"from": at, "until": at + 10}).status_code == 200
    answer = llmlens_server.get("/api/v1/profiles/diff", service=service,
                                baseline_start=iso(early - 5), baseline_end=iso(early + 5),
                                comparison_start=iso(late - 5), comparison_end=iso(late + 5))
    assert answer.status_code == 200, answer.text
    tree = answer.json()

    def both(node: dict) -> dict:
        return {c["name"]: (c["baseline"], c["baseline_self"], c["comparison"], c["comparison_self"], both(c))
                for c in node["children"]}

    assert (tree["baseline"], tree["comparison"]) == (10, 10)
    assert both(tree) == {M: (10, 0, 10, 0, {W: (8, 8, 4, 3, {L: (0, 0, 1, 1, {})}), OT: (2, 2, 6, 6, {})})}
    # With no baseline given: the range against the one of the same length before it.
    answer = llmlens_server.get("/api/v1/profiles/diff", service=service, start=iso(late - 100), end=iso(late + 100))
    assert (answer.json()["baseline"], answer.json()["comparison"]) == (0, 10)
    answer = llmlens_server.get("/api/v1/profiles/diff", service=service, start=iso(late - 2900), end=iso(late + 100))
    assert (answer.json()["baseline"], answer.json()["comparison"]) == (10, 10)  # early falls in the period before
    # Every service's samples when no service is named.
    services = llmlens_server.get("/api/v1/profiles/services", start="-2h", end="now").json()["services"]
    everything = sum(s["value"] for s in services if s["profile_type"] == "process_cpu")
    assert flamegraph(llmlens_server, "")["value"] == everything >= 20
    # The same by span names over one range.
    answer = llmlens_server.get("/api/v1/profiles/diff", service=service, start="-2h",
                                baseline_span_name="nope", comparison_span_name="nope")
    assert answer.status_code == 200 and answer.json()["value"] == 0


@pytest.mark.parametrize("params", [
    {"service": "x" * 2000}, {"service": "x", "start": "yesterday"}, {"service": "x", "span_id": "xyz"},
    {"service": "x", "trace_id": "12"}, {"service": "x", "max_nodes": "0"}, {"service": "x", "start": "-1m", "end": "-1h"},
    {"profile_type": "x" * 200},
])
def test_bad_query_parameters_get_400_naming_them(llmlens_server: ServerProcess, params: dict) -> None:
    diff_takes = {"service", "start", "end", "profile_type", "thread", "max_nodes"}
    for path in ("/api/v1/profiles/flamegraph", "/api/v1/profiles/diff"):
        if path.endswith("diff") and not set(params) <= diff_takes:
            continue
        answer = llmlens_server.get(path, **params)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["parameter"] in params
    answer = llmlens_server.get("/api/v1/profiles/diff", service="x", baseline_start="soon")
    assert answer.status_code == 400 and answer.json()["error"]["parameter"] == "baseline_start"


def _deep_pprof(depth: int) -> bytes:
    return PprofBuilder().sample([(f"f{i}", "deep.py", i) for i in range(depth)], 1).bytes()


def _wide_pprof(frames: int) -> bytes:
    builder = PprofBuilder()
    for i in range(0, frames, 100):
        builder.sample([(f"g{j}", "wide.py", j) for j in range(i, i + 100)], 1)
    return builder.bytes()


def _missing_location_pprof() -> bytes:
    builder = PprofBuilder().sample([MAIN], 1)
    builder.profile.sample.add(location_id=[99], value=[10_000_000])
    return builder.bytes()


HOSTILE = {
    "corrupt gzip": (b"\x1f\x8b\x08\x00garbage", {"format": "pprof"}, 400),
    "not pprof": (b"\x0a\xff\xff\xff\xff\xff\xff", {"format": "pprof"}, 400),
    "stack of 5000 frames": (_deep_pprof(5000), {"format": "pprof"}, 400),
    "folded stack of 50000 frames": (";".join(f"f{i}" for i in range(50000)).encode() + b" 1", {}, 400),
    "150000 distinct frames": (_wide_pprof(150_000), {"format": "pprof"}, 400),
    "location that does not exist": (_missing_location_pprof(), {"format": "pprof"}, 400),
    "folded count not a number": (b"a;b many", {}, 400),
    "unknown format": (b"a;b 1", {"format": "jfr"}, 415),
    "bad from": (b"a;b 1", {"from": "yesterday"}, 400),
    "too old": (b"a;b 1", {"from": "1000000000"}, 400),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_bodies_get_a_clear_4xx_and_the_server_keeps_serving(llmlens_server: ServerProcess, case: str) -> None:
    body, params, status = HOSTILE[case]
    before = flamegraph(llmlens_server, "pprof-svc")["value"]
    answer = ingest(llmlens_server, "hostile-svc.cpu", body, **params)
    assert answer.status_code == status, answer.text
    assert answer.json()["message"]
    assert llmlens_server.get("/readyz").status_code == 200
    assert flamegraph(llmlens_server, "hostile-svc")["value"] == 0  # nothing of a refused body was kept
    assert flamegraph(llmlens_server, "pprof-svc")["value"] == before
    assert ingest(llmlens_server, "after-hostile.cpu", b"a;b 1").status_code == 200


def test_a_push_of_many_profiles_with_too_many_frames_in_all(llmlens_server: ServerProcess) -> None:
    """Each profile under the per-profile limit, together over the request's: refused whole."""
    builder_bodies = []
    for p in range(4):
        builder = PprofBuilder(time.time_ns())
        for i in range(0, 60_000, 100):
            builder.sample([(f"p{p}_g{j}", "wide.py", j) for j in range(i, i + 100)], 1)
        builder_bodies.append(builder.bytes())
    body = push_request("too-wide-svc", builder_bodies).SerializeToString()
    answer = httpx.post(llmlens_server.url + "/push.v1.PusherService/Push", content=gzip.compress(body),
                        headers={"content-type": "application/proto", "content-encoding": "gzip"}, timeout=120)
    assert answer.status_code == 400, answer.text
    assert "distinct frames" in answer.json()["message"]
    assert flamegraph(llmlens_server, "too-wide-svc")["value"] == 0


def test_missing_name_and_gzip_bomb(llmlens_server: ServerProcess) -> None:
    answer = httpx.post(llmlens_server.url + "/ingest", content=b"a;b 1")
    assert answer.status_code == 400 and "name" in answer.json()["message"]
    bomb = gzip.compress(b"\0" * (200 * 1024 * 1024))
    answer = httpx.post(llmlens_server.url + "/ingest", params={"name": "bomb.cpu"}, content=bomb,
                        headers={"content-encoding": "gzip"}, timeout=60)
    assert answer.status_code == 413


PYROSCOPE_APP = textwrap.dedent("""
    import sys, time
    import pyroscope

    pyroscope.configure(application_name="pyroscope-io-app", server_address=sys.argv[1], sample_rate=100,
                        tags={"region": "test"})

    def burn_cpu_for_llmlens():
        deadline = time.time() + 12
        while time.time() < deadline:
            sum(i * i for i in range(2000))

    with pyroscope.tag_wrapper({"span_id": "0123456789abcdef", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}):
        burn_cpu_for_llmlens()
    pyroscope.shutdown()
""")


def test_the_pyroscope_io_client_pushes_to_llmlens(llmlens_server: ServerProcess) -> None:
    subprocess.run([sys.executable, "-c", PYROSCOPE_APP, llmlens_server.url], check=True, timeout=120)
    tree = flamegraph(llmlens_server, "pyroscope-io-app", span_id="0123456789abcdef")
    assert tree["value"] >= 300  # ~12 s at 100 Hz of one busy thread
    assert _total_named(tree, "burn_cpu_for_llmlens") >= 0.9 * tree["value"]


OTEL_LINKED_APP = textwrap.dedent("""
    import sys, time
    import pyroscope
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from pyroscope.otel import PyroscopeSpanProcessor

    url = sys.argv[1]
    pyroscope.configure(application_name="otel-linked-app", server_address=url, sample_rate=100)
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-linked-app"}))
    provider.add_span_processor(PyroscopeSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=url + "/v1/traces")))
    tracer = provider.get_tracer("linked")

    def parse_documents():
        deadline = time.time() + 12
        while time.time() < deadline:
            sum(i * i for i in range(2000))

    with tracer.start_as_current_span("handle-request") as root:
        with tracer.start_as_current_span("parse"):
            parse_documents()
    context = root.get_span_context()
    pyroscope.shutdown()
    provider.shutdown()
    print(f"{context.trace_id:032x} {context.span_id:016x}")
""")


def test_pyroscope_otel_span_linking(llmlens_server: ServerProcess) -> None:
    """pyroscope-otel tags the samples of a local-root span with its id (and sets pyroscope.profile.id
    on the span): the root span's flame graph, by id or by name, holds the work done in its child."""
    done = subprocess.run([sys.executable, "-c", OTEL_LINKED_APP, llmlens_server.url], check=True, timeout=120,
                          capture_output=True, text=True)
    trace_id, span_id = done.stdout.split()
    trace = llmlens_server.get(f"/api/v1/traces/{trace_id}").json()
    root = next(s for s in trace["spans"] if s["span_id"] == span_id)
    assert root["attributes"]["pyroscope.profile.id"] == span_id

    for params in ({"span_id": span_id, "trace_id": trace_id}, {"span_id": span_id}, {"span_name": "handle-request"}):
        tree = flamegraph(llmlens_server, "otel-linked-app", **params)
        assert tree["value"] >= 300, params
        assert _total_named(tree, "parse_documents") >= 0.9 * tree["value"], params


def _total_named(node: dict, needle: str) -> int:
    own = node["value"] if needle in node["name"] else 0
    return own or sum(_total_named(c, needle) for c in node["children"])


def test_profile_receivers_take_the_api_key_as_otlp_does(tmp_path_factory: pytest.TempPathFactory) -> None:
    key = "a-long-enough-profiles-api-key"
    server = ServerProcess(tmp_path_factory.mktemp("keyed-profiles") / "data", env={"LLMLENS_API_KEY": key}).start()
    try:
        bearer = {"authorization": f"Bearer {key}"}
        pprof = known_pprof().bytes()
        push = push_request("keyed-svc", [known_pprof(time.time_ns()).bytes()]).SerializeToString()
        otlp = otlp_profiles_request("keyed-svc", {(MAIN, WORK): 1}, time.time_ns()).SerializeToString()
        at = now_s()  # two profiles: the same bytes at the same time would be one, resent
        sends = [(f"/ingest?name=keyed-svc.cpu&format=pprof&from={at - 20}", pprof, "application/octet-stream"),
                 (f"/pyroscope/ingest?name=keyed-svc.cpu&format=pprof&from={at - 10}", pprof, "application/octet-stream"),
                 ("/push.v1.PusherService/Push", push, "application/proto"),
                 ("/v1development/profiles", otlp, "application/x-protobuf")]
        for path, body, media in sends:
            refused = httpx.post(server.url + path, content=body, headers={"content-type": media}, timeout=60)
            assert refused.status_code == 401, (path, refused.text)
            assert refused.headers["content-type"].startswith("application/json")  # never a login redirect
            taken = httpx.post(server.url + path, content=body, headers={"content-type": media, **bearer}, timeout=60)
            assert taken.status_code == 200, (path, taken.text)
        answer = httpx.get(server.url + "/api/v1/profiles/flamegraph", params={"service": "keyed-svc", "start": "-2h"},
                           headers=bearer, timeout=60)
        assert answer.json()["value"] == 12 + 12 + 12 + 1
    finally:
        server.terminate()
