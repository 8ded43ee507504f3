"""The span metrics' derivation on real batches: the corpus of real instrumentors' exports and
hand-made spans, normalised as the ingest workers do, then merged as the commit listener does.
Every family's values are checked against what the spans say."""

from __future__ import annotations

import json
import time

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmlens import semconv
from llmlens.sdk import aggregates as sdk
from llmlens.server.metrics import derive
from llmlens.server.metrics import families as f
from llmlens.server.metrics.deltas import BatchMetrics
from llmlens.server.metrics.registry import HistogramValue, Registry
from llmlens.server.normalise import build_cost_model
from llmlens.server.receive.workers import build_batch
from llmlens.server.store.batch import Batch
from tests.conftest import CORPUS
from tests.integration.otlp_requests import (
    key_values,
    llm_attrs,
    make_span,
    new_span_id,
    new_trace_id,
    trace_request,
)

INSTRUMENTORS = ("otel", "traceloop", "openlit", "phoenix")
CASES = ("chat", "stream", "embeddings", "error", "tools")
COST = build_cost_model(window=None)  # the corpus was captured days ago: no time window here


def batch_of(body: bytes) -> Batch:
    return build_batch("traces", body, "protobuf", COST, (derive.derive,))


def spans_batch(spans, service: str = "svc", resource: dict | None = None) -> Batch:
    return batch_of(trace_request(spans, service=service, resource=resource).SerializeToString())


def merged(*batches: Batch) -> Registry:
    registry = Registry(f.REGISTERED, max_series=1000)
    for batch in batches:
        delta = batch.derived.get(derive.NAME)
        if delta is not None:
            registry.merge(delta)
    return registry


def series(registry: Registry, family: f.Family) -> dict:
    return dict(next(s.series for s in registry.snapshot() if s.family.name == family.name))


def labelled(family: f.Family, values: dict, **labels: str) -> dict:
    """Series of a family whose labels include `labels`."""
    index = {name: i for i, name in enumerate(family.labels)}
    return {k: v for k, v in values.items() if all(k[index[n]] == v_ for n, v_ in labels.items())}


def test_the_llm_families_use_the_sdks_buckets():
    """One dashboard reads the server's and the SDK's llm_* series: same buckets (the server may not
    import the SDK, so the numbers are written twice and compared here)."""
    assert f.LLM_DURATION_BUCKETS == sdk.DURATION_BUCKETS
    assert f.LLM_TTFT_BUCKETS == sdk.TTFT_BUCKETS
    assert tuple(float(b) for b in sdk.TOKEN_BUCKETS) == f.GENAI_TOKEN_BUCKETS
    assert tuple(0.002 * 2**i for i in range(14)) == f.SPAN_LATENCY_BUCKETS  # Tempo's ExponentialBuckets(0.002, 2, 14)
    assert tuple(0.1 * 2**i for i in range(8)) == f.SERVICE_GRAPH_BUCKETS


@pytest.mark.parametrize("instrumentor", INSTRUMENTORS)
def test_corpus_calls_give_the_genai_and_llm_families(instrumentor: str):
    """Each real capture: one model call per case with the expected models, tokens and error."""
    expected = json.loads((CORPUS / instrumentor / "EXPECTED.json").read_text())["cases"]
    for case in CASES:
        path = CORPUS / instrumentor / f"{case}.traces.pb"
        if not path.exists():
            continue
        want = expected[case]["expected"]
        registry = merged(batch_of(path.read_bytes()))
        durations = series(registry, f.GENAI_DURATION)
        model = want["request_model"] or want["response_model"]
        calls = labelled(f.GENAI_DURATION, durations, gen_ai_request_model=want["request_model"] or "")
        assert sum(h.count for h in calls.values()) == want["llm_span_count"], (instrumentor, case, durations)
        requests = series(registry, f.LLM_REQUESTS)
        status = "error" if want["errored"] else "ok"
        assert sum(v for k, v in requests.items() if k[0] == model and k[1] == status) == want["llm_span_count"]
        tokens = series(registry, f.LLM_TOKENS)
        if want["input_tokens"] is not None:
            assert tokens[(model, "input", "")] == want["input_tokens"], (instrumentor, case)
        if want["output_tokens"] is not None and case != "embeddings":
            assert tokens[(model, "output", "")] == want["output_tokens"], (instrumentor, case)
        errors = series(registry, f.LLM_ERRORS)
        assert bool(errors) == bool(want["errored"]), (instrumentor, case, errors)


def test_genai_labels_and_values_of_a_call():
    """Labels are the GenAI attributes, the server's address and the sender's service.name; values
    land in the semconv buckets; time to first chunk only for streamed calls; tokens by type."""
    trace_id, now = new_trace_id(), time.time_ns()
    attrs = {**llm_attrs("gpt-4o-mini", 120, 30, response_model="gpt-4o-mini-2024-07-18"),
             "server.address": "api.openai.com", "gen_ai.response.time_to_first_chunk": 0.3}
    streamed = make_span("chat gpt-4o-mini", trace_id=trace_id, start_ns=now, duration_ms=1500, attrs=attrs,
                         kind=Span.SPAN_KIND_CLIENT)
    plain = make_span("chat gpt-4o-mini", trace_id=trace_id, start_ns=now, duration_ms=50,
                      attrs=llm_attrs("gpt-4o-mini", 10, 5, response_model="gpt-4o-mini-2024-07-18"),
                      kind=Span.SPAN_KIND_CLIENT)
    registry = merged(spans_batch([streamed, plain], service="support-bot",
                                  resource={"llmlens.app": "support", "llmlens.department": "cx"}))
    durations = series(registry, f.GENAI_DURATION)
    with_address = ("chat", "openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "", "api.openai.com", "support-bot")
    without = (*with_address[:5], "", "support-bot")
    assert set(durations) == {with_address, without}
    hist = durations[with_address]
    assert hist.count == 1 and hist.total == pytest.approx(1.5)
    assert hist.counts[f.GENAI_DURATION_BUCKETS.index(2.56)] == 1  # 1.28 < 1.5 <= 2.56
    ttft = series(registry, f.GENAI_TTFT)
    assert set(ttft) == {with_address} and ttft[with_address].total == pytest.approx(0.3)
    tokens = series(registry, f.GENAI_TOKENS)
    assert tokens[(*with_address, "input")].total == 120 and tokens[(*with_address, "output")].total == 30
    assert tokens[(*without, "input")].counts[f.GENAI_TOKEN_BUCKETS.index(16.0)] == 1  # 4 < 10 <= 16
    assert series(registry, f.LLM_TOKENS) == {("gpt-4o-mini", "input", "support"): 130.0,
                                              ("gpt-4o-mini", "output", "support"): 35.0}
    assert series(registry, f.LLM_REQUESTS) == {("gpt-4o-mini", "ok", "support"): 2.0}
    llm_ttft = series(registry, f.LLM_TTFT)[("gpt-4o-mini",)]
    assert llm_ttft.count == 1 and llm_ttft.counts[f.LLM_TTFT_BUCKETS.index(0.5)] == 1
    assert series(registry, f.LLM_DURATION)[("gpt-4o-mini",)].count == 2


def test_cost_unpriced_and_errors_follow_the_sdk():
    """Cost by model, department and app; a successful call of an unknown model is unpriced (a
    failed one is not priced at all); errors by type, with status="error" on llm_requests_total."""
    now = time.time_ns()
    priced = make_span("chat", start_ns=now, attrs=llm_attrs("gpt-4o-mini", 1000, 1000))
    unknown = make_span("chat", start_ns=now, attrs=llm_attrs("no-such-model-x1", 10, 10))
    failed = make_span("chat", start_ns=now, error=True,
                       attrs={**llm_attrs("no-such-model-x1", 0, 0), "error.type": "RateLimitError"})
    registry = merged(spans_batch([priced, unknown, failed], resource={"llmlens.department": "cx",
                                                                         "llmlens.app": "bot"}))
    cost = series(registry, f.LLM_COST)
    assert set(cost) == {("gpt-4o-mini", "cx", "bot")} and cost[("gpt-4o-mini", "cx", "bot")] > 0
    assert series(registry, f.LLM_UNPRICED) == {("no-such-model-x1",): 1.0}
    assert series(registry, f.LLM_ERRORS) == {("no-such-model-x1", "RateLimitError"): 1.0}
    assert series(registry, f.LLM_REQUESTS) == {("gpt-4o-mini", "ok", "bot"): 1.0, ("no-such-model-x1", "ok", "bot"): 1.0,
                                                ("no-such-model-x1", "error", "bot"): 1.0}


def test_span_metrics_have_tempos_labels_buckets_and_exemplars():
    """Every span counts, by service, name, SPAN_KIND_* and STATUS_CODE_*; latency in Tempo's
    buckets (a span of exactly 2 ms is in le=0.002); each occupied bucket has an exemplar of a span
    in it."""
    trace_id, now = new_trace_id(), time.time_ns()
    spans = [make_span("GET /a", trace_id=trace_id, start_ns=now, duration_ms=2, kind=Span.SPAN_KIND_SERVER),
             make_span("GET /a", trace_id=trace_id, start_ns=now, duration_ms=3, kind=Span.SPAN_KIND_SERVER),
             make_span("GET /a", trace_id=trace_id, start_ns=now, duration_ms=40, error=True,
                       kind=Span.SPAN_KIND_SERVER),
             make_span("work", trace_id=trace_id, start_ns=now, duration_ms=20000)]
    registry = merged(spans_batch(spans, service="api"))
    calls = series(registry, f.SPAN_CALLS)
    assert calls == {("api", "GET /a", "SPAN_KIND_SERVER", "STATUS_CODE_UNSET"): 2.0,
                     ("api", "GET /a", "SPAN_KIND_SERVER", "STATUS_CODE_ERROR"): 1.0,
                     ("api", "work", "SPAN_KIND_INTERNAL", "STATUS_CODE_UNSET"): 1.0}
    latency = series(registry, f.SPAN_LATENCY)
    ok: HistogramValue = latency[("api", "GET /a", "SPAN_KIND_SERVER", "STATUS_CODE_UNSET")]
    assert ok.counts[0] == 1 and ok.counts[1] == 1  # 2 ms <= 0.002; 3 ms <= 0.004
    long = latency[("api", "work", "SPAN_KIND_INTERNAL", "STATUS_CODE_UNSET")]
    assert long.counts[-1] == 1  # over 16.384 s: only +Inf
    by_span = {s.span_id.hex(): s for s in spans}
    for hist in latency.values():
        for bucket, exemplar in enumerate(hist.exemplars):
            if hist.counts[bucket]:
                assert exemplar is not None and exemplar[0] == trace_id.hex()
                span = by_span[exemplar[1]]
                assert exemplar[2] == pytest.approx((span.end_time_unix_nano - span.start_time_unix_nano) / 1e9)
            else:
                assert exemplar is None


def test_quality_scores_keep_the_newest_value():
    now = time.time_ns()
    span = make_span("judge", start_ns=now, attrs={"llmlens.app": "support"})
    for offset, value in ((2, 0.9), (1, 0.2)):  # the later event first: order in the body does not matter
        span.events.append(Span.Event(time_unix_nano=now + offset, name=semconv.EVALUATION_EVENT,
                                           attributes=key_values({semconv.EVALUATION_NAME: "relevance",
                                                                  semconv.EVALUATION_SCORE: value})))
    registry = merged(spans_batch([span]))
    assert series(registry, f.LLM_QUALITY) == {("support", "relevance"): 0.9}


def test_database_calls_and_root_servers_make_edges_at_once():
    """As Tempo: a client span with a database attribute is an edge to the database (named by
    peer.service, server.address, then the db attribute) without waiting; a root server span is an
    edge from "user" (or the peer it names)."""
    now = time.time_ns()
    spans = [make_span("SELECT", start_ns=now, duration_ms=150, kind=Span.SPAN_KIND_CLIENT,
                       attrs={"db.system": "postgresql", "server.address": "pg.internal"}),
             make_span("query", start_ns=now, duration_ms=5, kind=Span.SPAN_KIND_CLIENT, error=True,
                       attrs={"db.system.name": "qdrant"}),
             make_span("POST /chat", start_ns=now, duration_ms=900, kind=Span.SPAN_KIND_SERVER),
             make_span("GET /health", start_ns=now, duration_ms=1, kind=Span.SPAN_KIND_SERVER,
                       attrs={"peer.service": "probe"})]
    batch = spans_batch(spans, service="chatbot")
    delta: BatchMetrics = batch.derived[derive.NAME]
    assert delta.clients is None and delta.servers is None  # nothing waits
    requests = delta.counters[f.EDGE_REQUESTS.name]
    assert requests == {("chatbot", "pg.internal", "database"): 1.0, ("chatbot", "qdrant", "database"): 1.0,
                        ("user", "chatbot", "virtual_node"): 1.0, ("probe", "chatbot", "virtual_node"): 1.0}
    assert delta.counters[f.EDGE_FAILED.name] == {("chatbot", "qdrant", "database"): 1.0}
    server = delta.histograms[f.EDGE_SERVER_SECONDS.name][("chatbot", "pg.internal", "database")]
    assert server.total == pytest.approx(0.15) and server.counts[1] == 1  # 0.1 < 0.15 <= 0.2


def test_other_client_and_server_spans_travel_as_halves():
    """Clients keyed by trace + own span id, with the name of the node they would reach alone (the
    GenAI provider here); servers keyed by trace + parent span id."""
    trace_id, parent, now = new_trace_id(), new_span_id(), time.time_ns()
    llm = make_span("chat", trace_id=trace_id, start_ns=now, kind=Span.SPAN_KIND_CLIENT,
                    attrs={**llm_attrs("gpt-4o-mini", 1, 1), "gen_ai.provider.name": "openai",
                           "server.address": "api.openai.com"})
    http = make_span("GET", trace_id=trace_id, start_ns=now, kind=Span.SPAN_KIND_CLIENT,
                     attrs={"server.address": "retriever"})
    served = make_span("GET /search", trace_id=trace_id, parent=parent, start_ns=now, kind=Span.SPAN_KIND_SERVER)
    delta: BatchMetrics = spans_batch([llm, http, served], service="chatbot").derived[derive.NAME]
    clients, servers = delta.clients, delta.servers
    assert clients is not None and servers is not None
    assert clients.keys == [trace_id.hex() + llm.span_id.hex(), trace_id.hex() + http.span_id.hex()]
    assert [clients.label(i) for i in range(len(clients))] == [("chatbot", "openai", False),
                                                               ("chatbot", "retriever", False)]
    assert servers.keys == [trace_id.hex() + parent.hex()]
    assert [servers.label(i) for i in range(len(servers))] == [("chatbot", "", False)]


def test_a_batch_without_spans_derives_nothing():
    batch = Batch()
    batch.freeze((derive.derive,))
    assert derive.NAME not in batch.derived
