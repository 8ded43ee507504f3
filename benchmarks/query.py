"""Query latency on a big store: seeds N spans (default 1M, 4-span LLM traces spread over the
last 24 h), starts a real `llmlens serve` on it, and prints the median milliseconds of the
API calls the UI makes most: the trace list, one trace, 24 h LLM stats, one session, the
Services page's service graph and RED table, the default range every page asks for first, and the
first and second pages of a trace search and of the session list, and a search by session.

    python benchmarks/query.py [--spans 1000000] [--repeat 9] [--keep DIR] [--shape llm|services]
                               [--under-ingest [SPANS_PER_S]] [--goals-only]

`--under-ingest` runs every query idle, then again while a separate sender process ingests into
the same server at a steady rate (by default half the server's maximum, measured first by a
10-second burst of 4 senders), and prints both with their ratio. It adds traces to the store
(each body is a template with fresh trace ids, so nothing is deduplicated away).

`--shape services` seeds 8-span traces over four services instead (traffic -> chatbot ->
retriever and mock LLM, as the demo's), so the service graph pairs every client span with
a server span: the worst case of its join. The other figures assume the default shape.

Seeding writes through the same normaliser and writer as the server, in this process
(faster than HTTP), then closes the store so the server can open it.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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
    """Median ms of `repeat` calls and the last answer; inf and {} if the server's query timeout ends one."""
    samples, body = [], {}
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url, params=params)
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code == 504:
            return math.inf, {}
        response.raise_for_status()
        body = response.json()
    return statistics.median(samples), body


def measure(client: httpx.Client, repeat: int, shape: str, goals_only: bool = False) -> list[tuple[str, float, str]]:
    """(label, median ms, goal) of each query, in the order the table prints them; with `goals_only`,
    only the queries that have a goal (the first five)."""
    rows: list[tuple[str, float, str]] = []
    list_ms, page = timed(client, "/api/v1/traces", repeat, start="-24h", limit=50)
    rows.append(("trace list, last 24 h, 50 newest", list_ms, "<= 30"))
    service_ms, _ = timed(client, "/api/v1/traces", repeat, start="-24h", limit=50, service="chatbot",
                          model="gpt-4o-mini")
    rows.append(("trace list filtered by service and model", service_ms, ""))
    trace_id = page["items"][len(page["items"]) // 2]["trace_id"]
    one_ms, trace = timed(client, f"/api/v1/traces/{trace_id}", repeat)
    rows.append((f"one trace ({len(trace['spans'])} spans)", one_ms, "<= 10"))
    stats_ms, _ = timed(client, "/api/v1/llm/stats", repeat, start="-24h", step="5m", group_by="model")
    rows.append(("LLM stats, 24 h, 5 min buckets, by model", stats_ms, "<= 100"))
    if shape == "llm":  # the services shape has no sessions
        session_ms, session = timed(client, "/api/v1/sessions/s-7", repeat, start="-24h")
        rows.append((f"one session ({session.get('turns', '?')} turns, with previews)", session_ms, "<= 200"))
    if goals_only:
        return rows
    graph_ms, graph = timed(client, "/api/v1/service-graph", repeat, start="-24h")
    rows.append((f"service graph, 24 h ({len(graph.get('edges', []))} edges)", graph_ms, ""))
    rows.append(("service graph, 1 h", timed(client, "/api/v1/service-graph", repeat, start="-1h")[0], ""))
    red_ms, red = timed(client, "/api/v1/red", repeat, start="-24h")
    rows.append((f"RED, 24 h ({len(red.get('rows', []))} service/span name/kind rows)", red_ms, ""))
    activity_ms, activity = timed(client, "/api/v1/activity", repeat)
    rows.append((f"default range (activity: {activity.get('default_range')})", activity_ms, ""))
    q = '{ span.gen_ai.request.model = "gpt-4o-mini" }'
    search_ms, found = timed(client, "/api/v1/search", repeat, q=q, start="-24h", limit=50)
    rows.append(("search by model, 24 h, first 50", search_ms, ""))
    if found.get("next_cursor"):
        rows.append(("search by model, 24 h, next 50 (cursor)", timed(
            client, "/api/v1/search", repeat, q=q, start="-24h", limit=50, cursor=found["next_cursor"])[0], ""))
    if shape == "llm":
        rows.append(("search by session, 24 h, first 50", timed(
            client, "/api/v1/search", repeat, q='{ session = "s-7" }', start="-24h", limit=50)[0], ""))
    sessions_ms, sessions = timed(client, "/api/v1/sessions", repeat, start="-24h", limit=100)
    rows.append(("session list, 24 h, first 100", sessions_ms, ""))
    if sessions.get("next_cursor"):
        rows.append(("session list, 24 h, next 100 (cursor)", timed(
            client, "/api/v1/sessions", repeat, start="-24h", limit=100, cursor=sessions["next_cursor"])[0], ""))
    return rows


# --- Ingest beside the queries (--under-ingest) ---------------------------------------------------
SPANS_A_BODY = 512


class FreshBodies:
    """Export requests of the default shape, each with fresh trace ids: a few templates are built
    once (about 0.3 s each), then each body copies one and overwrites its trace ids in place
    (about 1 ms), so the sender keeps up without the span deduplication dropping anything."""

    def __init__(self, templates: int = 4) -> None:
        self.templates = []
        for _ in range(templates):
            body = build_request(SPANS_A_BODY // 4, time.time_ns())
            request = ExportTraceServiceRequest.FromString(body)
            ids = list(dict.fromkeys(span.trace_id for rs in request.resource_spans
                                     for scope in rs.scope_spans for span in scope.spans))
            offsets = [(at, n) for n, trace_id in enumerate(ids) for at in _find_all(body, trace_id)]
            self.templates.append((body, len(ids), offsets))
        self.n = 0

    def next(self) -> bytes:
        body, count, offsets = self.templates[self.n % len(self.templates)]
        self.n += 1
        fresh = [random.randbytes(16) for _ in range(count)]
        out = bytearray(body)
        for at, n in offsets:
            out[at:at + 16] = fresh[n]
        return bytes(out)


def _find_all(body: bytes, needle: bytes) -> list[int]:
    found, at = [], body.find(needle)
    while at >= 0:
        found.append(at)
        at = body.find(needle, at + 1)
    return found


def send(url: str, rate: float | None, stop, ready, results) -> None:
    """In a child process (the timed queries' process keeps its GIL to itself): posts bodies at
    `rate` spans/s, or as fast as 4 senders go if None, until `stop` is set; puts (spans acknowledged,
    seconds, {status: count}) on `results`."""
    bodies = FreshBodies()
    acked, statuses, lock = [0], {}, threading.Lock()

    def post(client: httpx.Client, body: bytes) -> None:
        r = client.post(url + "/v1/traces", content=body, headers={"content-type": "application/x-protobuf"})
        with lock:
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code == 200:
                acked[0] += SPANS_A_BODY
        if r.status_code in (429, 503):
            time.sleep(float(r.headers.get("retry-after", "1")))

    ready.set()
    started = time.monotonic()
    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=8)) as client:
        if rate is None:
            def flat_out() -> None:
                while not stop.is_set():
                    post(client, bodies.next())
            threads = [threading.Thread(target=flat_out) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            interval, next_at = SPANS_A_BODY / rate, time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                while not stop.is_set():
                    pool.submit(post, client, bodies.next())
                    next_at += interval
                    time.sleep(max(0.0, next_at - time.monotonic()))
    results.put((acked[0], time.monotonic() - started, statuses))


class Sender:
    """A `send` process: started, waited for until its bodies are built, stopped, its figures read."""

    def __init__(self, url: str, rate: float | None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.stop, ready, self.results = ctx.Event(), ctx.Event(), ctx.Queue()
        self.proc = ctx.Process(target=send, args=(url, rate, self.stop, ready, self.results))
        self.proc.start()
        if not ready.wait(120):
            raise RuntimeError("the sender did not start")

    def finish(self) -> tuple[int, float, dict[int, int]]:
        self.stop.set()
        result = self.results.get(timeout=120)
        self.proc.join(30)
        return result


def max_rate(client: httpx.Client, url: str, seconds: float = 10.0) -> float:
    """Spans/s the server stores end to end with 4 senders flat out (counted by /api/v1/status)."""
    before = client.get("/api/v1/status").json()["spans"]
    sender = Sender(url, None)
    started = time.monotonic()
    time.sleep(seconds)
    acked, _, _ = sender.finish()
    deadline, stored = started + seconds + 120, before
    while stored < before + acked and time.monotonic() < deadline:
        time.sleep(0.2)
        stored = client.get("/api/v1/status").json()["spans"]
    return (stored - before) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--keep", help="seed into (or reuse) this folder and keep it")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llm", help="traces to seed (see above)")
    parser.add_argument("--goals-only", action="store_true", help="only the queries that have a goal")
    parser.add_argument("--under-ingest", nargs="?", type=float, const=0.0, metavar="SPANS_PER_S",
                        help="measure again while ingesting (default rate: half the measured maximum)")
    args = parser.parse_args()

    data_dir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="llmlens-query-")) / "data"
    reuse = data_dir.exists() and any(data_dir.iterdir())
    if not reuse:
        started = time.perf_counter()
        seed(data_dir, args.spans, args.shape)
        print(f"seeded {args.spans:,} spans in {time.perf_counter() - started:.0f} s")
    server = ServerProcess(data_dir).start()
    busy: list[tuple[str, float, str]] | None = None
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            status = client.get("/api/v1/status").json()
            print(f"store: {status['spans']:,} spans")
            idle = measure(client, args.repeat, args.shape, args.goals_only)
            idle_load = os.getloadavg()[0]
            if args.under_ingest is not None:
                rate = args.under_ingest
                if not rate:
                    top = max_rate(client, server.url)
                    rate = top / 2
                    print(f"ingest: {top:,.0f} spans/s flat out (4 senders, 10 s); querying under {rate:,.0f}")
                sender = Sender(server.url, rate)
                try:
                    time.sleep(5)  # past the first commits and merges
                    busy = measure(client, args.repeat, args.shape, args.goals_only)
                finally:
                    acked, elapsed, statuses = sender.finish()
                print(f"ingest during the queries: {acked / elapsed:,.0f} spans/s acknowledged "
                      f"(HTTP statuses {statuses}), {acked:,} spans")
            busy_load = os.getloadavg()[0]
    finally:
        server.terminate()
        if not args.keep:
            shutil.rmtree(data_dir.parent, ignore_errors=True)
    print()
    if busy is None:
        print(f"{'query':48} median ms   goal (5M spans)   load avg {idle_load:.1f}")
        for label, ms, goal in idle:
            print(f"{label:48} {ms:9.1f}   {goal}")
        return
    print(f"{'query':48} idle ms  ingest ms  ratio   goal (5M, idle)")
    busy_ms = {label.split(" (")[0]: ms for label, ms, _ in busy}  # labels may hold counts that moved
    for label, ms, goal in idle:
        during = busy_ms.get(label.split(" (")[0], math.nan)
        print(f"{label:48} {ms:7.1f}  {during:9.1f}  {during / ms:5.2f}   {goal}")
    print(f"load average (1 min) after idle {idle_load:.1f}, after ingest {busy_load:.1f}")


if __name__ == "__main__":
    main()
