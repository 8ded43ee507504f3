"""Query latency on a big store: seeds N spans (default 1M, 4-span LLM traces spread over the
last 24 h), starts a real `llmlens serve` on it, and prints the median milliseconds of the
API calls the UI makes most: the trace list, one trace, 24 h LLM stats, one session, the
Services page's service graph and RED table, the default range every page asks for first, and the
first and second pages of a trace search and of the session list, and a search by session.

    python benchmarks/query.py [--spans 1000000] [--repeat 9] [--keep DIR] [--shape llm|services]

`--shape services` seeds 8-span traces over four services instead (traffic -> chatbot ->
retriever and mock LLM, as the demo's), so the service graph pairs every client span with
a server span: the worst case of its join. The other figures assume the default shape.

Seeding writes through the same normaliser and writer as the server, in this process
(faster than HTTP), then closes the store so the server can open it.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.ingest import PROMPT, build_request  # noqa: E402
from tests.server_process import ServerProcess  # noqa: E402


def services_request(traces: int, now_ns: int) -> bytes:
    """8-span traces over four services, shaped like the demo's: traffic -> chatbot, chatbot ->
    retriever (which searches an in-process FAISS index), chatbot -> mock LLM (5% fail there)."""
    request = ExportTraceServiceRequest()
    spans = {name: _resource_spans(request, name) for name in ("traffic", "chatbot", "retriever", "mock-llm")}
    for i in range(traces):
        tid = random.randbytes(16)
        at = now_ns - random.randint(0, 5_000_000_000) + i
        failed = random.random() < 0.05
        call = _add(spans["traffic"], tid, b"", "POST", Span.SPAN_KIND_CLIENT, at, 950, {"http.method": "POST"})
        root = _add(spans["chatbot"], tid, call, "POST /v1/chat", Span.SPAN_KIND_SERVER, at + 1_000_000, 940,
                    {"http.route": "/v1/chat", "session.id": f"s-{i % 50}"}, failed)
        search = _add(spans["chatbot"], tid, root, "POST", Span.SPAN_KIND_CLIENT, at + 2_000_000, 40,
                      {"http.method": "POST", "server.address": "retriever"})
        served = _add(spans["retriever"], tid, search, "POST /search", Span.SPAN_KIND_SERVER, at + 3_000_000, 35,
                      {"http.route": "/search"})
        _add(spans["retriever"], tid, served, "vector index search", Span.SPAN_KIND_INTERNAL, at + 4_000_000, 3,
             {"db.system.name": "faiss"})
        _add(spans["chatbot"], tid, root, "build context", Span.SPAN_KIND_INTERNAL, at + 45_000_000, 2, {})
        chat = _add(spans["chatbot"], tid, root, "chat gpt-4o-mini", Span.SPAN_KIND_CLIENT, at + 50_000_000, 880, {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 400, "gen_ai.usage.output_tokens": 120, "server.address": "mock-llm",
            "gen_ai.input.messages": PROMPT}, failed)
        _add(spans["mock-llm"], tid, chat, "POST /v1/chat/completions", Span.SPAN_KIND_SERVER, at + 51_000_000, 870,
             {"http.route": "/v1/chat/completions"}, failed)
    return request.SerializeToString()


def _resource_spans(request: ExportTraceServiceRequest, service: str):
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "llmlens.bench"
    return scope.spans


def _add(spans, trace_id: bytes, parent: bytes, name: str, kind: int, start: int, dur_ms: float, attrs: dict,
         failed: bool = False) -> bytes:
    span = spans.add(trace_id=trace_id, span_id=random.randbytes(8), parent_span_id=parent, name=name, kind=kind,
                     start_time_unix_nano=start, end_time_unix_nano=start + int(dur_ms * 1e6),
                     status=Status(code=Status.STATUS_CODE_ERROR if failed else Status.STATUS_CODE_OK))
    for key, value in attrs.items():
        span.attributes.append(KeyValue(key=key, value=AnyValue(
            int_value=value) if isinstance(value, int) else AnyValue(string_value=str(value))))
    return span.span_id


SHAPES = {"llm": (build_request, 4), "services": (services_request, 8)}  # builder, spans a trace


def seed(data_dir: Path, spans: int, shape: str = "llm") -> None:
    from rich.progress import Progress

    from llmlens.server.receive.workers import build_in_worker, start_workers
    from llmlens.server.store import Store, open_backend

    store = Store(open_backend(data_dir=str(data_dir)))
    workers = start_workers(2, None, False)
    now = time.time_ns()
    per_request = 2048
    requests = (spans + per_request - 1) // per_request
    with Progress() as progress:
        task = progress.add_task("seeding spans", total=requests * per_request)
        pending: list = []
        for _ in range(requests):
            # Spread traces over the last 24 h: each request lands at a random time of day.
            at = now - random.randint(0, 86_400 * 10**9 - 10**10)
            builder, spans_a_trace = SHAPES[shape]
            body = builder(per_request // spans_a_trace, at)
            pending.append(workers.submit(build_in_worker, "traces", body, "protobuf"))
            if len(pending) >= 4:
                store.write_sync(pending.pop(0).result().batch())
                progress.advance(task, per_request)
        for future in pending:
            store.write_sync(future.result().batch())
            progress.advance(task, per_request)
    workers.shutdown()
    store.backend.execute("OPTIMIZE TABLE trace_index FINAL")
    store.close()


def timed(client: httpx.Client, url: str, repeat: int, **params) -> tuple[float, dict]:
    samples, body = [], {}
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url, params=params)
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        body = response.json()
    return statistics.median(samples), body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--keep", help="seed into (or reuse) this folder and keep it")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llm", help="traces to seed (see above)")
    args = parser.parse_args()

    data_dir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="llmlens-query-")) / "data"
    reuse = data_dir.exists() and any(data_dir.iterdir())
    if not reuse:
        started = time.perf_counter()
        seed(data_dir, args.spans, args.shape)
        print(f"seeded {args.spans:,} spans in {time.perf_counter() - started:.0f} s")
    server = ServerProcess(data_dir).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            status = client.get("/api/v1/status").json()
            print(f"store: {status['spans']:,} spans")
            list_ms, page = timed(client, "/api/v1/traces", args.repeat, start="-24h", limit=50)
            trace_id = page["items"][len(page["items"]) // 2]["trace_id"]
            one_ms, trace = timed(client, f"/api/v1/traces/{trace_id}", args.repeat)
            stats_ms, _ = timed(client, "/api/v1/llm/stats", args.repeat, start="-24h", step="5m", group_by="model")
            service_ms, _ = timed(client, "/api/v1/traces", args.repeat, start="-24h", limit=50, service="chatbot",
                                  model="gpt-4o-mini")
            session_ms, session = (timed(client, "/api/v1/sessions/s-7", args.repeat, start="-24h")
                                   if args.shape == "llm" else (None, None))  # the services shape has no sessions
            graph_ms, graph = timed(client, "/api/v1/service-graph", args.repeat, start="-24h")
            graph_1h_ms, _ = timed(client, "/api/v1/service-graph", args.repeat, start="-1h")
            red_ms, red = timed(client, "/api/v1/red", args.repeat, start="-24h")
            activity_ms, activity = timed(client, "/api/v1/activity", args.repeat)
            q = '{ span.gen_ai.request.model = "gpt-4o-mini" }'
            search_ms, found = timed(client, "/api/v1/search", args.repeat, q=q, start="-24h", limit=50)
            search_2_ms, _ = timed(client, "/api/v1/search", args.repeat, q=q, start="-24h", limit=50,
                                   cursor=found["next_cursor"])
            session_q_ms, _ = (timed(client, "/api/v1/search", args.repeat, q='{ session = "s-7" }', start="-24h",
                                     limit=50) if args.shape == "llm" else (None, None))
            sessions_ms, sessions = timed(client, "/api/v1/sessions", args.repeat, start="-24h", limit=100)
            sessions_2_ms = (timed(client, "/api/v1/sessions", args.repeat, start="-24h", limit=100,
                                   cursor=sessions["next_cursor"])[0] if sessions["next_cursor"] else None)
    finally:
        server.terminate()
        if not args.keep:
            shutil.rmtree(data_dir.parent, ignore_errors=True)
    print()
    print(f"{'query':44} median ms   bar")
    print(f"{'trace list, last 24 h, 50 newest':44} {list_ms:9.1f}   <= 100")
    print(f"{'trace list filtered by service and model':44} {service_ms:9.1f}")
    print(f"{'one trace (' + str(len(trace['spans'])) + ' spans)':44} {one_ms:9.1f}   <= 50")
    print(f"{'LLM stats, 24 h, 5 min buckets, by model':44} {stats_ms:9.1f}   <= 500")
    if session:
        print(f"{'one session (' + str(session['turns']) + ' turns, with previews)':44} {session_ms:9.1f}")
    print(f"{'service graph, 24 h (' + str(len(graph['edges'])) + ' edges)':44} {graph_ms:9.1f}")
    print(f"{'service graph, 1 h':44} {graph_1h_ms:9.1f}")
    print(f"{'RED, 24 h (' + str(len(red['rows'])) + ' service/span name/kind rows)':44} {red_ms:9.1f}")
    print(f"{'default range (activity: ' + activity['default_range'] + ')':44} {activity_ms:9.1f}")
    print(f"{'search by model, 24 h, first 50':44} {search_ms:9.1f}")
    print(f"{'search by model, 24 h, next 50 (cursor)':44} {search_2_ms:9.1f}")
    if session_q_ms is not None:
        print(f"{'search by session, 24 h, first 50':44} {session_q_ms:9.1f}")
    print(f"{'session list, 24 h, first 100':44} {sessions_ms:9.1f}")
    if sessions_2_ms is not None:
        print(f"{'session list, 24 h, next 100 (cursor)':44} {sessions_2_ms:9.1f}")


if __name__ == "__main__":
    main()
