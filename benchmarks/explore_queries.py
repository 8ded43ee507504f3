"""Query times of the exploring endpoints on a real `llmlens serve`: trace compare, the typical trace
of a root span, the quality view and the metrics explorer (gauge grouped, cumulative histogram as
percentiles). Seeds over OTLP/HTTP, as apps send:

- `--traces` 4-span LLM traces (root, retrieval, chat, evaluation with a score) over the last 24 h;
- `--series` cumulative histogram series and as many gauge series, one point a minute each over
  `--hours` (default 24: 1,440 points a series).

    python benchmarks/explore_queries.py [--traces 20000] [--series 50] [--hours 24] [--repeat 7]

Prints the median milliseconds of each request (the server's whole answer, Python included).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    HistogramDataPoint,
    NumberDataPoint,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.otlp_requests import (  # noqa: E402
    MS,
    key_values,
    llm_attrs,
    make_span,
    metrics_request,
    post,
    trace_request,
)
from tests.server_process import ServerProcess  # noqa: E402

SECOND = 1_000_000_000
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-haiku")
BOUNDS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000]


def seed_traces(url: str, traces: int, now_ns: int) -> None:
    spans: list[Span] = []
    for i in range(traces):
        tid = random.randbytes(16)
        start = now_ns - random.randint(60, 86_000) * SECOND
        root = make_span("POST /v1/chat", trace_id=tid, start_ns=start, duration_ms=random.uniform(200, 3000))
        retrieve = make_span("retrieve", trace_id=tid, parent=root.span_id, start_ns=start + MS, duration_ms=40)
        model = MODELS[i % 3]
        chat = make_span(f"chat {model}", trace_id=tid, parent=root.span_id, start_ns=start + 50 * MS,
                         duration_ms=random.uniform(100, 2500), attrs=llm_attrs(model, 400, 120))
        score = make_span("evaluation groundedness", trace_id=tid, parent=chat.span_id, start_ns=start + 2900 * MS)
        score.events.append(Span.Event(time_unix_nano=start + 2900 * MS, name="gen_ai.evaluation.result",
                                       attributes=key_values({"gen_ai.evaluation.name": "groundedness",
                                                              "gen_ai.evaluation.score.value": random.random()})))
        spans += [root, retrieve, chat, score]
        if len(spans) >= 4000:
            post(url, "traces", trace_request(spans, service="chatbot", resource={"llmlens.app": f"app-{i % 4}"}))
            spans = []
    if spans:
        post(url, "traces", trace_request(spans, service="chatbot"))


def seed_metrics(url: str, series: int, hours: int, now_ns: int) -> None:
    start_ns = now_ns - hours * 3600 * SECOND
    for s in range(series):
        request = metrics_request(service=f"svc-{s % 5}")
        metrics = request.resource_metrics[0].scope_metrics[0].metrics
        gauge = metrics.add(name="bench.queue.depth", unit="{item}")
        histogram = metrics.add(name="bench.latency", unit="ms")
        histogram.histogram.aggregation_temporality = AGGREGATION_TEMPORALITY_CUMULATIVE
        counts = [0] * (len(BOUNDS) + 1)
        attrs = key_values({"route": f"/r{s % 10}", "instance": f"i-{s}"})
        for minute in range(hours * 60):
            at = start_ns + minute * 60 * SECOND
            gauge.gauge.data_points.append(NumberDataPoint(time_unix_nano=at, as_double=random.random() * 100,
                                                           attributes=attrs))
            for _ in range(20):
                counts[random.randint(0, len(BOUNDS))] += 1
            histogram.histogram.data_points.append(HistogramDataPoint(
                time_unix_nano=at, start_time_unix_nano=start_ns, count=sum(counts), sum=sum(counts) * 120.0,
                explicit_bounds=BOUNDS, bucket_counts=list(counts), attributes=attrs))
        answer = post(url, "metrics", request)
        assert answer.status_code == 200, answer.text


def timed(url: str, path: str, params: dict, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        answer = httpx.get(url + path, params=params, timeout=120)
        times.append((time.perf_counter() - began) * 1000)
        assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text[:200]}"
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--series", type=int, default=50)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    random.seed(7)
    with tempfile.TemporaryDirectory(prefix="llmlens-explore-bench-") as folder:
        server = ServerProcess(Path(folder) / "data").start()
        try:
            now_ns = time.time_ns()
            began = time.perf_counter()
            seed_traces(server.url, args.traces, now_ns)
            seed_metrics(server.url, args.series, args.hours, now_ns)
            print(f"seeded {args.traces} traces ({4 * args.traces} spans, {args.traces} scores) and "
                  f"{2 * args.series} metric series x {args.hours * 60} points in {time.perf_counter() - began:.0f} s")
            listed = httpx.get(server.url + "/api/v1/traces", params={"start": "-24h", "limit": 2}, timeout=60).json()
            a, b = (t["trace_id"] for t in listed["items"])
            day = {"start": "-24h"}
            cases = [
                ("compare two 4-span traces", "/api/v1/traces/compare", {"a": a, "b": b}),
                ("typical trace of a root, 24 h", "/api/v1/traces/typical",
                 {"service": "chatbot", "name": "POST /v1/chat", **day}),
                ("quality view, 24 h", "/api/v1/quality", day),
                ("metric attributes, 24 h", "/api/v1/metrics/attributes", {"name": "bench.latency", **day}),
                ("gauge by route, 24 h", "/api/v1/metrics/query", {"name": "bench.queue.depth", "group_by": "route", **day}),
                ("histogram p50/p90/p99, 1 h", "/api/v1/metrics/query", {"name": "bench.latency", "start": "-1h"}),
                ("histogram p50/p90/p99 by route, 24 h", "/api/v1/metrics/query",
                 {"name": "bench.latency", "group_by": "route", **day}),
            ]
            for label, path, params in cases:
                print(f"{label:40s} {timed(server.url, path, params, args.repeat):8.1f} ms")
        finally:
            server.terminate()


if __name__ == "__main__":
    main()
