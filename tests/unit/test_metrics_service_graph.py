"""Service-graph pairing (Tempo's rules) with a fake clock: halves out of order, across batches and
across real ingest worker processes, expiry into virtual nodes, the pending cap."""

from __future__ import annotations

import time

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmlens.server.metrics import derive
from llmlens.server.metrics import families as f
from llmlens.server.metrics.deltas import BatchMetrics
from llmlens.server.metrics.registry import Registry
from llmlens.server.metrics.service_graph import ExpirySweep, ServiceGraph
from llmlens.server.normalise import build_cost_model
from llmlens.server.receive.workers import build_batch, build_in_worker, start_workers
from llmlens.server.store.batch import DEFAULT_DERIVATIONS
from tests.integration.otlp_requests import llm_attrs, make_span, new_span_id, new_trace_id, trace_request

CLIENT, SERVER, PRODUCER, CONSUMER = (Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_SERVER, Span.SPAN_KIND_PRODUCER,
                                      Span.SPAN_KIND_CONSUMER)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def delta_of(spans, service: str) -> BatchMetrics:
    body = trace_request(spans, service=service).SerializeToString()
    return build_batch("traces", body, "protobuf", build_cost_model(window=None), (derive.derive,)).derived[derive.NAME]


def graph(wait_s: float = 10.0, max_pending: int = 10_000) -> tuple[ServiceGraph, Registry, FakeClock]:
    clock = FakeClock()
    registry = Registry(f.REGISTERED, max_series=1000)
    return ServiceGraph(registry, wait_s=wait_s, max_pending=max_pending, clock=clock), registry, clock


def feed(g: ServiceGraph, delta: BatchMetrics) -> None:
    g.add(delta.clients, delta.servers)


def values(registry: Registry, family: f.Family) -> dict:
    return dict(next(s.series for s in registry.snapshot() if s.family.name == family.name))


def call(trace_id: bytes, *, client_service: str = "chatbot", error_on: str = "", kind: tuple[int, int] = (CLIENT, SERVER),
         client_ms: float = 300, server_ms: float = 250) -> tuple[BatchMetrics, BatchMetrics]:
    """A client span in one service and its server child in another, as two batches."""
    client_id = new_span_id()
    client = make_span("GET /search", trace_id=trace_id, span_id=client_id, parent=new_span_id(), kind=kind[0],
                       duration_ms=client_ms, error=error_on == "client", attrs={"server.address": "retriever"})
    server = make_span("GET /search", trace_id=trace_id, parent=client_id, kind=kind[1], duration_ms=server_ms,
                       error=error_on == "server")
    return delta_of([client], client_service), delta_of([server], "retriever")


@pytest.mark.parametrize("server_first", [False, True])
def test_a_client_and_its_server_child_pair_across_batches_in_either_order(server_first: bool):
    g, registry, clock = graph()
    client, server = call(new_trace_id())
    for delta in ((server, client) if server_first else (client, server)):
        feed(g, delta)
        clock.now += 3  # seconds apart, within the wait
    assert values(registry, f.EDGE_REQUESTS) == {("chatbot", "retriever", ""): 1.0}
    assert values(registry, f.EDGE_FAILED) == {}
    assert values(registry, f.EDGE_SERVER_SECONDS)[("chatbot", "retriever", "")].total == pytest.approx(0.25)
    assert values(registry, f.EDGE_CLIENT_SECONDS)[("chatbot", "retriever", "")].total == pytest.approx(0.3)
    assert g.pending == 0
    clock.now += 60
    g.expire()
    assert values(registry, f.EDGE_UNPAIRED) == {}  # both halves found each other: nothing expired


def test_either_side_failing_fails_the_edge_and_messaging_has_its_connection_type():
    g, registry, _ = graph()
    for delta in (*call(new_trace_id(), error_on="server"), *call(new_trace_id(), error_on="client"),
                  *call(new_trace_id())):
        feed(g, delta)
    assert values(registry, f.EDGE_REQUESTS) == {("chatbot", "retriever", ""): 3.0}
    assert values(registry, f.EDGE_FAILED) == {("chatbot", "retriever", ""): 2.0}
    for delta in call(new_trace_id(), kind=(PRODUCER, CONSUMER)):
        feed(g, delta)
    assert values(registry, f.EDGE_REQUESTS)[("chatbot", "retriever", "messaging_system")] == 1.0


def test_many_edges_in_one_batch_pair_with_many_in_another():
    """50 client spans in one request, their server children in another (in reverse order, served
    by two services, some failing): each server pairs with its own client."""
    g, registry, _ = graph()
    trace_id = new_trace_id()
    ids = [new_span_id() for _ in range(50)]
    clients = [make_span("call", trace_id=trace_id, span_id=i, kind=CLIENT, duration_ms=100 + n)
               for n, i in enumerate(ids)]
    servers = [make_span("serve", trace_id=trace_id, parent=i, kind=SERVER, duration_ms=10 * (n + 1),
                         error=n % 10 == 0) for n, i in enumerate(ids)]
    feed(g, delta_of([make_span("c", kind=CLIENT)], "chatbot"))  # an unrelated client: waits
    feed(g, delta_of(clients, "chatbot"))
    feed(g, delta_of([s for n, s in enumerate(servers) if n % 2 == 0][::-1], "even"))
    feed(g, delta_of([s for n, s in enumerate(servers) if n % 2 == 1][::-1], "odd"))
    assert values(registry, f.EDGE_REQUESTS) == {("chatbot", "even", ""): 25.0, ("chatbot", "odd", ""): 25.0}
    assert values(registry, f.EDGE_FAILED) == {("chatbot", "even", ""): 5.0}  # n = 0, 10, 20, 30, 40
    server_seconds = values(registry, f.EDGE_SERVER_SECONDS)
    assert server_seconds[("chatbot", "even", "")].total == pytest.approx(sum(0.01 * (n + 1) for n in range(0, 50, 2)))
    client_seconds = values(registry, f.EDGE_CLIENT_SECONDS)
    assert client_seconds[("chatbot", "odd", "")].total == pytest.approx(sum(0.1 + n / 1000 for n in range(1, 50, 2)))
    assert g.pending == 1


def test_halves_built_in_different_worker_processes_pair_in_the_server():
    """The client span and its server child decoded by two real ingest worker processes (spawned as
    the server spawns them), then paired in this process."""
    trace_id, client_id = new_trace_id(), new_span_id()
    client = trace_request([make_span("GET /search", trace_id=trace_id, span_id=client_id, kind=CLIENT)],
                           service="chatbot").SerializeToString()
    server = trace_request([make_span("GET /search", trace_id=trace_id, parent=client_id, kind=SERVER)],
                           service="retriever").SerializeToString()
    workers = start_workers(2, None, False, (*DEFAULT_DERIVATIONS, derive.derive))
    try:
        # Two at once, so that each worker takes one (a pool hands a busy worker nothing).
        futures = [workers.submit(build_in_worker, "traces", body, "protobuf") for body in (server, client)]
        built = [future.result(120) for future in futures]
        pids = {p.pid for p in workers._processes.values()}  # noqa: SLF001 -- only to show there were two
    finally:
        workers.shutdown()
    assert len(pids) == 2
    g, registry, _ = graph()
    for one in built:
        feed(g, one.batch().derived[derive.NAME])
    assert values(registry, f.EDGE_REQUESTS) == {("chatbot", "retriever", ""): 1.0}


def test_an_unanswered_client_expires_into_a_virtual_node_and_counts_as_unpaired():
    """An LLM call nobody instrumented: after the wait, an edge to its provider (Tempo's peer
    attributes first, then gen_ai.provider.name, then server.address); a client with no name for its
    peer and a server whose client never came only count as unpaired."""
    g, registry, clock = graph(wait_s=10)
    now = time.time_ns()
    llm = make_span("chat", start_ns=now, kind=CLIENT, duration_ms=700,
                    attrs={**llm_attrs("gpt-4o-mini", 5, 5), "gen_ai.provider.name": "openai",
                           "server.address": "api.openai.com"})
    named = make_span("GET", start_ns=now, kind=CLIENT, attrs={"peer.service": "billing", "server.address": "10.0.0.7"})
    nameless = make_span("GET", start_ns=now, kind=CLIENT)
    feed(g, delta_of([llm, named, nameless], "chatbot"))
    feed(g, delta_of([make_span("GET /x", parent=new_span_id(), kind=SERVER)], "retriever"))
    clock.now += 9
    g.expire()
    assert values(registry, f.EDGE_REQUESTS) == {} and g.pending == 4  # still within the wait
    clock.now += 2
    g.expire()
    assert values(registry, f.EDGE_REQUESTS) == {("chatbot", "openai", "virtual_node"): 1.0,
                                                 ("chatbot", "billing", "virtual_node"): 1.0}
    assert values(registry, f.EDGE_SERVER_SECONDS)[("chatbot", "openai", "virtual_node")].total == pytest.approx(0.7)
    assert values(registry, f.EDGE_UNPAIRED) == {("chatbot", ""): 3.0, ("", "retriever"): 1.0}
    assert g.pending == 0


def test_a_server_half_arriving_after_its_client_expired_pairs_no_more():
    g, registry, clock = graph(wait_s=5)
    client, server = call(new_trace_id())
    feed(g, client)
    clock.now += 6
    g.expire()
    feed(g, server)
    assert ("chatbot", "retriever", "") not in values(registry, f.EDGE_REQUESTS)
    assert values(registry, f.EDGE_REQUESTS) == {("chatbot", "retriever", "virtual_node"): 1.0}  # by server.address
    assert g.pending == 1


def test_past_the_pending_cap_the_oldest_expire_first():
    g, registry, _ = graph(max_pending=100)
    old = delta_of([make_span(f"c{i}", kind=CLIENT, attrs={"peer.service": "old"}) for i in range(80)], "a")
    new = delta_of([make_span(f"c{i}", kind=CLIENT, attrs={"peer.service": "new"}) for i in range(80)], "a")
    feed(g, old)
    assert g.pending == 80
    feed(g, new)
    assert g.pending == 80  # the older batch's 80 went first
    assert values(registry, f.EDGE_REQUESTS) == {("a", "old", "virtual_node"): 80.0}
    assert values(registry, f.EDGE_UNPAIRED) == {("a", ""): 80.0}


def test_the_sweep_thread_expires_on_its_own():
    registry = Registry(f.REGISTERED, max_series=1000)
    g = ServiceGraph(registry, wait_s=0.2, max_pending=1000)
    feed(g, delta_of([make_span("GET", kind=CLIENT, attrs={"peer.service": "x"})], "a"))
    sweep = ExpirySweep(g, interval_s=0.05)
    sweep.start()
    try:
        deadline = time.monotonic() + 10
        while g.pending and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sweep.stop()
    assert g.pending == 0
    assert values(registry, f.EDGE_REQUESTS) == {("a", "x", "virtual_node"): 1.0}
