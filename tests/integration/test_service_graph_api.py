"""The service graph and RED API (GET /api/v1/service-graph, GET /api/v1/red) on real servers.

Two sources of spans:
- hand-built OTLP spans sent to a real server: pairs sent server-first (out of order, in separate
  requests), peers that sent nothing (named by peer.service, db.name, db.system, server.address),
  LLM calls in two conventions, an SDK's HTTP request under an LLM call, messaging, errors on either
  side, a pair outside the window;
- the demo's own processes (server, mock LLM, retriever, chatbot), started as `llmlens demo` starts
  them, driven with chat requests (two with injected faults, two after the mock LLM was stopped).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmlens.demo.orchestrator import child_environment, service_specs
from llmlens.demo.processes import ManagedProcess
from llmlens.demo.settings import LOOPBACK, DemoSettings, choose_ports
from tests.integration.otlp_requests import (
    MS,
    llm_attrs,
    make_span,
    new_span_id,
    new_trace_id,
    post,
    trace_request,
)
from tests.server_process import ServerProcess

CLIENT, SERVER, INTERNAL = Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_SERVER, Span.SPAN_KIND_INTERNAL
PRODUCER, CONSUMER = Span.SPAN_KIND_PRODUCER, Span.SPAN_KIND_CONSUMER


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def get(server_url: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(server_url + path, params=params, timeout=60)


def ok(server_url: str, path: str, **params: Any) -> dict[str, Any]:
    response = get(server_url, path, **params)
    assert response.status_code == 200, response.text
    return response.json()


def edges_by_pair(graph: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    pairs = {(e["client"], e["server"]): e for e in graph["edges"]}
    assert len(pairs) == len(graph["edges"]), "one edge per (client, server)"
    return pairs


def nodes_by_id(graph: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["id"]: n for n in graph["nodes"]}


# -- hand-built spans ---------------------------------------------------------------------------

@dataclass(frozen=True)
class HandBuilt:
    server: ServerProcess
    base: datetime
    trace_ids: dict[str, list[str]]  # what each case sent, by case name

    def window(self, **extra: Any) -> dict[str, Any]:
        return {"start": iso(self.base - timedelta(minutes=1)), "end": iso(self.base + timedelta(minutes=10)),
                **extra}


@pytest.fixture(scope="module")
def hand_built(llmlens_server: ServerProcess) -> HandBuilt:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    at = int(base.timestamp()) * 1_000_000_000
    spans: dict[str, list[Span]] = {}
    trace_ids: dict[str, list[str]] = {}

    def span(service: str, case: str, trace_id: bytes, name: str, kind: int, *, parent: bytes = b"",
             offset_ms: float = 0, duration_ms: float = 5, attrs: dict | None = None, error: bool = False,
             start_ns: int | None = None) -> bytes:
        span_id = new_span_id()
        spans.setdefault(service, []).append(make_span(
            name, trace_id=trace_id, span_id=span_id, parent=parent, kind=kind, duration_ms=duration_ms,
            start_ns=(at if start_ns is None else start_ns) + int(offset_ms * MS), attrs=attrs, error=error))
        trace_ids.setdefault(case, [])
        if trace_id.hex() not in trace_ids[case]:
            trace_ids[case].append(trace_id.hex())
        return span_id

    # shop -> payments three times, under shop's root server span: one fails on the server, one on
    # the client. payments' spans are sent first, in their own request (they arrive before their parents).
    for i, (server_ms, server_error, client_error) in enumerate(((10, False, False), (20, True, False),
                                                                 (30, False, True))):
        tid = new_trace_id()
        root = span("shop", "checkout", tid, "POST /checkout", SERVER, offset_ms=i * 1000, duration_ms=60)
        call = span("shop", "checkout", tid, "POST", CLIENT, parent=root, offset_ms=i * 1000 + 5, duration_ms=40,
                    error=client_error)
        span("payments", "checkout", tid, "POST /pay", SERVER, parent=call, offset_ms=i * 1000 + 6,
             duration_ms=server_ms, error=server_error)
    # The same pair three hours earlier: outside the window.
    tid = new_trace_id()
    earlier = at - 3 * 3600 * 1_000_000_000
    call = span("shop", "earlier", tid, "POST", CLIENT, start_ns=earlier, duration_ms=40)
    span("payments", "earlier", tid, "POST /pay", SERVER, parent=call, start_ns=earlier + MS, duration_ms=10)
    # Peers that sent nothing: a database is named by its address first (Tempo's database rule).
    span("batch-job", "peer-is-a-service", new_trace_id(), "charge", CLIENT, attrs={"peer.service": "payments"})
    span("shop", "postgres", new_trace_id(), "SELECT orders", CLIENT,
         attrs={"db.system": "postgresql", "db.name": "orders", "server.address": "db.internal"})
    span("shop", "redis", new_trace_id(), "GET", CLIENT,
         attrs={"db.system.name": "redis", "network.peer.address": "10.0.0.5", "network.peer.port": 6379})
    span("shop", "qdrant", new_trace_id(), "qdrant search", CLIENT, attrs={"db.system": "qdrant"})
    span("shop", "fraud", new_trace_id(), "score", CLIENT,
         attrs={"peer.service": "fraud-check", "server.address": "fraud.internal"})
    span("shop", "stripe", new_trace_id(), "GET", CLIENT, attrs={"server.address": "api.stripe.com"})
    span("shop", "nameless", new_trace_id(), "GET", CLIENT)  # no peer attribute: no edge
    # LLM calls: OTel GenAI (a failed one), OpenInference (an INTERNAL span), and two through an
    # SDK that also traces its HTTP request: unanswered (-> the provider), answered (-> llm-gateway).
    span("shop", "anthropic", new_trace_id(), "chat claude", CLIENT, error=True,
         attrs=llm_attrs("claude-3-5-haiku", 10, 0, provider="anthropic"))
    span("shop", "openinference", new_trace_id(), "ChatCompletion", INTERNAL, duration_ms=300,
         attrs={"openinference.span.kind": "LLM", "llm.provider": "mistralai", "llm.model_name": "mistral-large",
                "llm.token_count.prompt": 12, "llm.token_count.completion": 3})
    tid = new_trace_id()
    llm = span("shop", "openai-direct", tid, "chat gpt-4o", CLIENT, duration_ms=200,
               attrs=llm_attrs("gpt-4o", 20, 5, provider="openai"))
    span("shop", "openai-direct", tid, "POST", CLIENT, parent=llm, offset_ms=1, duration_ms=190,
         attrs={"http.request.method": "POST", "server.address": "api.openai.com"})
    tid = new_trace_id()
    llm = span("shop", "openai-gateway", tid, "chat gpt-4o", CLIENT, duration_ms=200,
               attrs=llm_attrs("gpt-4o", 20, 5, provider="openai"))
    http_call = span("shop", "openai-gateway", tid, "POST", CLIENT, parent=llm, offset_ms=1, duration_ms=190,
                     attrs={"http.request.method": "POST", "server.address": "llm-gateway.internal"})
    span("llm-gateway", "openai-gateway", tid, "POST /v1/chat/completions", SERVER, parent=http_call,
         offset_ms=2, duration_ms=180)
    # Messaging: a producer and its consumer.
    tid = new_trace_id()
    published = span("shop", "messaging", tid, "orders publish", PRODUCER)
    span("mailer", "messaging", tid, "orders process", CONSUMER, parent=published, offset_ms=50)

    url = llmlens_server.url
    first = ("payments", "llm-gateway", "mailer")
    for service in (*first, *(s for s in spans if s not in first)):
        response = post(url, "traces", trace_request(spans[service], service=service))
        assert response.status_code == 200, response.text
    llmlens_server.wait_for_spans(sum(len(s) for s in spans.values()))
    return HandBuilt(llmlens_server, base, trace_ids)


def test_edges_follow_tempo_pairing_and_name_virtual_nodes_in_tempo_order(hand_built: HandBuilt) -> None:
    graph = ok(hand_built.server.url, "/api/v1/service-graph", **hand_built.window())
    edges = edges_by_pair(graph)
    assert set(edges) == {
        ("user", "shop"), ("shop", "payments"), ("batch-job", "payments"), ("shop", "db.internal"),
        ("shop", "10.0.0.5:6379"),
        ("shop", "qdrant"), ("shop", "fraud-check"), ("shop", "api.stripe.com"), ("shop", "anthropic"),
        ("shop", "mistral_ai"), ("shop", "openai"), ("shop", "llm-gateway"), ("shop", "mailer"),
    }
    # Paired across requests (the server spans came first); failed when either side failed.
    pay = edges["shop", "payments"]
    assert (pay["requests"], pay["errors"]) == (3, 2)
    assert pay["error_rate"] == pytest.approx(2 / 3)
    assert pay["p50_ms"] == pytest.approx(20)  # the server spans' durations: 10, 20, 30 ms
    assert 20 < pay["p95_ms"] <= 30
    assert pay["connection_type"] == ""
    assert pay["rate"] == pytest.approx(3 / graph["window_seconds"])
    assert (edges["user", "shop"]["requests"], edges["user", "shop"]["errors"]) == (3, 0)
    assert edges["user", "shop"]["p50_ms"] == pytest.approx(60)
    # Virtual servers: a database by peer.service, server.address, network.peer.address:port, then its
    # db.* attributes; any other peer by peer.service, then server.address.
    assert edges["batch-job", "payments"]["requests"] == 1
    assert edges["shop", "db.internal"]["connection_type"] == "database"
    assert edges["shop", "10.0.0.5:6379"]["connection_type"] == "database"
    assert edges["shop", "qdrant"]["connection_type"] == "database"
    assert edges["shop", "fraud-check"]["connection_type"] == "virtual_node"
    assert edges["shop", "fraud-check"]["p50_ms"] == pytest.approx(5)  # the client span's duration
    # LLM calls: by normalised provider, the failed one counted; the SDK's HTTP request is not an
    # edge of its own, and the call answered by an instrumented gateway is the gateway's.
    assert (edges["shop", "anthropic"]["requests"], edges["shop", "anthropic"]["errors"]) == (1, 1)
    assert edges["shop", "mistral_ai"]["requests"] == 1
    assert edges["shop", "mistral_ai"]["p50_ms"] == pytest.approx(300)
    assert edges["shop", "openai"]["requests"] == 1
    assert edges["shop", "llm-gateway"]["requests"] == 1
    assert edges["shop", "mailer"]["connection_type"] == "messaging_system"

    nodes = nodes_by_id(graph)
    kinds = {name: (n["kind"], n["type"]) for name, n in nodes.items()}
    assert kinds == {
        "shop": ("service", "service"), "payments": ("service", "service"), "batch-job": ("service", "service"),
        "llm-gateway": ("service", "service"), "mailer": ("service", "service"), "user": ("virtual", "user"),
        "db.internal": ("virtual", "database"), "10.0.0.5:6379": ("virtual", "database"),
        "qdrant": ("virtual", "vector_store"),
        "fraud-check": ("virtual", "external"), "api.stripe.com": ("virtual", "external"),
        "anthropic": ("virtual", "llm"), "mistral_ai": ("virtual", "llm"), "openai": ("virtual", "llm"),
    }
    # A node's requests are what reaches it; calls, what it sends.
    assert (nodes["payments"]["requests"], nodes["payments"]["errors"]) == (4, 2)
    assert nodes["shop"]["calls"] == sum(e["requests"] for e in graph["edges"] if e["client"] == "shop") == 13
    assert nodes["user"]["calls"] == 3 and nodes["user"]["requests"] == 0


def test_the_window_decides_what_is_counted(hand_built: HandBuilt) -> None:
    wider = {"start": iso(hand_built.base - timedelta(hours=4)), "end": iso(hand_built.base + timedelta(minutes=10))}
    edges = edges_by_pair(ok(hand_built.server.url, "/api/v1/service-graph", **wider))
    assert edges["shop", "payments"]["requests"] == 4
    before = {"start": iso(hand_built.base - timedelta(hours=4)), "end": iso(hand_built.base - timedelta(hours=2))}
    graph = ok(hand_built.server.url, "/api/v1/service-graph", **before)
    assert [(e["client"], e["server"], e["requests"]) for e in graph["edges"]] == [("shop", "payments", 1)]
    empty = {"start": "2001-01-01T00:00:00Z", "end": "2001-01-02T00:00:00Z"}
    assert ok(hand_built.server.url, "/api/v1/service-graph", **empty) | {"start": 0, "end": 0} == {
        "start": 0, "end": 0, "window_seconds": 86400.0, "nodes": [], "edges": []}


def test_a_service_filter_keeps_its_edges_and_their_ends(hand_built: HandBuilt) -> None:
    graph = ok(hand_built.server.url, "/api/v1/service-graph", **hand_built.window(service="payments"))
    assert set(edges_by_pair(graph)) == {("shop", "payments"), ("batch-job", "payments")}
    assert set(nodes_by_id(graph)) == {"payments", "shop", "batch-job"}
    unknown = ok(hand_built.server.url, "/api/v1/service-graph", **hand_built.window(service="nope"))
    assert unknown["nodes"] == [] and unknown["edges"] == []


def test_each_edge_query_finds_the_traces_behind_it(hand_built: HandBuilt) -> None:
    graph = ok(hand_built.server.url, "/api/v1/service-graph", **hand_built.window())
    edges = edges_by_pair(graph)
    nodes = nodes_by_id(graph)

    def traces(query: str) -> set[str]:
        found = ok(hand_built.server.url, "/api/v1/search", q=query, limit=100, **hand_built.window())
        return {item["trace_id"] for item in found["items"]}

    cases = hand_built.trace_ids
    assert traces(edges["shop", "payments"]["traces_query"]) == set(cases["checkout"])
    assert traces(edges["user", "shop"]["traces_query"]) == set(cases["checkout"])
    assert traces(edges["shop", "fraud-check"]["traces_query"]) == set(cases["fraud"])
    assert traces(edges["shop", "db.internal"]["traces_query"]) == set(cases["postgres"])
    assert traces(edges["shop", "10.0.0.5:6379"]["traces_query"]) == set(cases["redis"])
    assert traces(edges["shop", "anthropic"]["traces_query"]) == set(cases["anthropic"])
    assert traces(edges["shop", "mistral_ai"]["traces_query"]) == set(cases["openinference"])
    assert traces(edges["shop", "llm-gateway"]["traces_query"]) == set(cases["openai-gateway"])
    assert traces(edges["shop", "mailer"]["traces_query"]) == set(cases["messaging"])
    assert traces(nodes["qdrant"]["traces_query"]) == set(cases["qdrant"])
    # payments is reached two ways: its node has no query (the traces page filters by service).
    assert nodes["payments"]["traces_query"] is None
    assert traces(edges["batch-job", "payments"]["traces_query"]) == set(cases["peer-is-a-service"])


def test_red_per_service_span_name_and_kind(hand_built: HandBuilt) -> None:
    red = ok(hand_built.server.url, "/api/v1/red", **hand_built.window(service="payments"))
    assert [(r["service"], r["span_name"], r["span_kind"]) for r in red["rows"]] == [
        ("payments", "POST /pay", "server")]
    row = red["rows"][0]
    assert (row["requests"], row["errors"]) == (3, 1)
    assert row["error_rate"] == pytest.approx(1 / 3)
    assert row["rate"] == pytest.approx(3 / red["window_seconds"])
    assert row["p50_ms"] == pytest.approx(20)
    assert 20 < row["p90_ms"] <= row["p99_ms"] <= 30
    assert red["truncated"] is False

    clients = ok(hand_built.server.url, "/api/v1/red", **hand_built.window(service="shop", kind="client"))
    by_name = {r["span_name"]: r for r in clients["rows"]}
    assert {r["span_kind"] for r in clients["rows"]} == {"client"}
    assert by_name["POST"]["requests"] == 5  # three to payments, two HTTP requests of LLM calls
    assert by_name["POST"]["errors"] == 1
    assert "orders publish" not in by_name
    both = ok(hand_built.server.url, "/api/v1/red", **hand_built.window(service="shop", kind=["client", "producer"]))
    assert {r["span_kind"] for r in both["rows"]} == {"client", "producer"}
    busiest = ok(hand_built.server.url, "/api/v1/red", **hand_built.window(limit=1))
    assert busiest["truncated"] is True and len(busiest["rows"]) == 1
    assert busiest["rows"][0]["requests"] == max(r["requests"] for r in ok(
        hand_built.server.url, "/api/v1/red", **hand_built.window())["rows"])


@pytest.mark.parametrize(("path", "params", "parameter"), [
    ("/api/v1/service-graph", {"start": "yesterday-ish"}, "start"),
    ("/api/v1/service-graph", {"start": "-1h", "end": "-2h"}, "start"),
    ("/api/v1/service-graph", {"service": "x" * 2000}, "service"),
    ("/api/v1/red", {"kind": "sideways"}, "kind"),
    ("/api/v1/red", {"limit": "0"}, "limit"),
    ("/api/v1/red", {"end": "not a time"}, "end"),
])
def test_bad_parameters_get_the_error_envelope(hand_built: HandBuilt, path: str, params: dict, parameter: str) -> None:
    response = get(hand_built.server.url, path, **params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_parameter"
    assert error["parameter"] == parameter
    assert error["message"]


def test_both_endpoints_are_in_the_openapi_document(hand_built: HandBuilt) -> None:
    paths = ok(hand_built.server.url, "/openapi.json")["paths"]
    assert {"/api/v1/service-graph", "/api/v1/red"} <= set(paths)


# -- the demo's own processes -------------------------------------------------------------------

CHATBOT, RETRIEVER, MOCK_LLM = "demo-chatbot", "demo-retriever", "demo-mock-llm"


@dataclass(frozen=True)
class DemoRun:
    server_url: str
    started: datetime
    answered: int        # chat requests that went all the way through
    faults: dict[str, int]
    unreachable_llm: int  # chat requests sent after the mock LLM was stopped


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    data_dir = tmp_path_factory.mktemp("demo")
    settings = DemoSettings(host=LOOPBACK, ports=choose_ports(LOOPBACK, None, auto=True), data_dir=data_dir,
                            duration=None, rate=1.0, concurrency=1, error_rate=0.0, scenarios=None,
                            log_dir=data_dir / "logs")
    settings.log_dir.mkdir()
    specs = service_specs(settings)
    # Export spans every 200 ms instead of every 5 s.
    env = child_environment(settings) | {"OTEL_BSP_SCHEDULE_DELAY": "200"}
    running: dict[str, ManagedProcess] = {}
    try:
        for group in (["server"], ["llm", "retriever"], ["chatbot"]):
            for role in group:
                running[role] = ManagedProcess(specs[role], env)
            for role in group:
                running[role].wait_ready(90.0)
        started = datetime.now(UTC) - timedelta(seconds=5)
        chatbot = settings.url(settings.ports.chatbot)
        answered, faults = 4, {"retriever_error": 1, "llm_error": 1}
        requests = [None] * answered + [fault for fault, n in faults.items() for _ in range(n)]
        for i, fault in enumerate(requests):
            _chat(chatbot, f"s-{i}", fault, expect_ok=fault is None)
        running["llm"].stop(10.0)
        unreachable = 2
        for i in range(unreachable):
            _chat(chatbot, f"s-down-{i}", None, expect_ok=False)
        yield DemoRun(settings.url(settings.ports.server_http), started, answered, faults, unreachable)
    finally:
        for role in ("chatbot", "retriever", "llm", "server"):  # the server last: the others flush to it
            if role in running:
                running[role].stop(10.0)


def _chat(chatbot_url: str, session: str, fault: str | None, *, expect_ok: bool) -> None:
    body = {"session_id": session, "user_message": "How do I export a page as PDF?", "user_id": "u-1",
            **({"fault": fault} if fault else {})}
    response = httpx.post(f"{chatbot_url}/v1/chat", json=body, timeout=30)
    assert (response.status_code == 200) == expect_ok, (fault, response.status_code, response.text[:300])


def _graph_when(demo: DemoRun, complete: Any, timeout_s: float = 60.0) -> dict[str, Any]:
    """Each process exports on its own schedule: poll until the graph holds every expected span."""
    deadline = time.monotonic() + timeout_s
    while True:
        graph = ok(demo.server_url, "/api/v1/service-graph", start=iso(demo.started))
        if complete(edges_by_pair(graph)) or time.monotonic() > deadline:
            return graph
        time.sleep(0.5)


@pytest.mark.slow
def test_the_demo_shows_chatbot_to_retriever_to_mock_llm_and_a_virtual_provider(demo: DemoRun) -> None:
    sent = demo.answered + sum(demo.faults.values()) + demo.unreachable_llm
    reached_llm = demo.answered + demo.faults["llm_error"]
    searched = sent - demo.faults["retriever_error"]  # the retriever refuses a negative top_k before searching

    def complete(edges: dict) -> bool:
        return (edges.get((CHATBOT, RETRIEVER), {}).get("requests") == sent
                and edges.get((CHATBOT, MOCK_LLM), {}).get("requests") == reached_llm
                and edges.get((CHATBOT, "openai"), {}).get("requests") == demo.unreachable_llm
                and edges.get((RETRIEVER, "faiss"), {}).get("requests") == searched)

    graph = _graph_when(demo, complete)
    edges = edges_by_pair(graph)
    assert complete(edges), {pair: (e["requests"], e["errors"]) for pair, e in edges.items()}
    # The chatbot's HTTP call pairs with the retriever's server span; a refused search (HTTP 422)
    # fails on the client side.
    assert edges[CHATBOT, RETRIEVER]["errors"] == demo.faults["retriever_error"]
    # The mock LLM's server span sits under the chatbot's LLM client span: the call is the mock's,
    # not a provider's, and the injected HTTP 500 is an error.
    assert edges[CHATBOT, MOCK_LLM]["errors"] == demo.faults["llm_error"]
    assert edges[CHATBOT, MOCK_LLM]["p50_ms"] > 0
    # With the mock stopped, the calls reached no instrumented peer: a virtual provider node.
    assert edges[CHATBOT, "openai"]["errors"] == demo.unreachable_llm
    assert edges[CHATBOT, "openai"]["connection_type"] == "virtual_node"
    assert edges[RETRIEVER, "faiss"]["connection_type"] == "database"
    # The test's requests carry no trace context: the chatbot's server spans are roots.
    # A request's server span ends after its client spans and may reach the store a batch later.
    deadline = time.monotonic() + 30
    while True:
        red = ok(demo.server_url, "/api/v1/red", start=iso(demo.started), service=CHATBOT, kind="server")
        chat_row = next((r for r in red["rows"] if r["span_name"] == "POST /v1/chat"), {"requests": 0})
        if chat_row["requests"] >= sent or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    chatbot_served = sum(r["requests"] for r in red["rows"])
    edges = edges_by_pair(ok(demo.server_url, "/api/v1/service-graph", start=iso(demo.started)))  # with those spans
    assert chat_row["requests"] == sent
    assert chat_row["errors"] == sent - demo.answered
    assert edges["user", CHATBOT]["requests"] == chatbot_served  # /v1/chat and readiness probes
    assert edges["user", CHATBOT]["errors"] == sent - demo.answered

    nodes = nodes_by_id(graph)
    assert {name: n["type"] for name, n in nodes.items() if n["kind"] == "virtual"} == {
        "openai": "llm", "faiss": "vector_store", "user": "user"}
    assert {CHATBOT, RETRIEVER, MOCK_LLM} <= {name for name, n in nodes.items() if n["kind"] == "service"}
    assert nodes[MOCK_LLM]["requests"] >= reached_llm
