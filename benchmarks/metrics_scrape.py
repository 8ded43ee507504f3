"""What /metrics costs: a scrape of a real `llmlens serve` holding 10,000 series, and the memory the
service-graph pairing buffer holds at 20,000 spans/s.

1. Scrape. A real server gets spans with 5,000 distinct span names: traces_spanmetrics_calls_total and
   traces_spanmetrics_latency then hold 5,000 label sets each (10,000 series; the histograms' 16
   samples a series make ~90,000 lines). Prints the median time of a scrape in the Prometheus text
   format and in OpenMetrics (with exemplars), and the bytes of each, plain and gzip-compressed (as
   served to a scraper sending Accept-Encoding: gzip, which Prometheus does).

2. Pairing buffer. benchmarks/ingest.py's spans (4 a trace: a root server span, an internal step and
   two LLM client spans nobody answers) at 20,000 spans/s, i.e. 10,000 client halves a second, fed
   through the derivation into the buffer on a simulated clock with the default [metrics] settings
   (wait 10 s, at most 10,000 waiting) and with no cap (every half waits its 10 s). Prints the bytes
   the buffer holds (tracemalloc) and its CPU time per half.

    python benchmarks/metrics_scrape.py [--names 5000] [--scrapes 5] [--seconds 30]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest as ingest_bench  # noqa: E402 -- benchmarks/ingest.py: the same spans
from tests.integration.otlp_requests import make_span, post, trace_request  # noqa: E402
from tests.server_process import ServerProcess  # noqa: E402

from llmlens.server.metrics import derive  # noqa: E402
from llmlens.server.metrics import families as f  # noqa: E402
from llmlens.server.metrics.deltas import HalfChunk  # noqa: E402
from llmlens.server.metrics.registry import Registry  # noqa: E402
from llmlens.server.metrics.service_graph import ServiceGraph  # noqa: E402
from llmlens.server.normalise import build_cost_model  # noqa: E402
from llmlens.server.receive.workers import build_batch  # noqa: E402

OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
TEXT = "text/plain;version=0.0.4"


def scrape_benchmark(names: int, scrapes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "data", extra_args=["--metrics-max-series", str(names + 100)]).start()
        try:
            now = time.time_ns()
            for start in range(0, names, 1000):
                spans = [make_span(f"operation-{i:05d}", start_ns=now, duration_ms=1 + i % 3000)
                         for i in range(start, min(names, start + 1000))]
                assert post(server.url, "traces", trace_request(spans, service="bench")).status_code == 200
            for label, accept in (("text 0.0.4", TEXT), ("OpenMetrics", OPENMETRICS)):
                times, body = [], b""
                for _ in range(scrapes):
                    started = time.perf_counter()
                    response = httpx.get(server.url + "/metrics", headers={"Accept": accept,
                                                                          "Accept-Encoding": "identity"}, timeout=120)
                    times.append(time.perf_counter() - started)
                    body = response.content
                gzipped = httpx.get(server.url + "/metrics", headers={"Accept": accept, "Accept-Encoding": "gzip"},
                                    timeout=120)
                series = sum(1 for line in body.decode().splitlines() if line.startswith("traces_spanmetrics_calls_total"))
                print(f"scrape, {label:12s} {statistics.median(times) * 1000:7.0f} ms median of {scrapes}  "
                      f"{len(body) / 1e6:6.2f} MB  ({len(gzip.compress(body)) / 1e6:.2f} MB gzip; "
                      f"served gzip: {gzipped.headers.get('content-encoding') == 'gzip'})  "
                      f"{series} span-name series x 2 families")
        finally:
            server.terminate()


def buffer_benchmark(seconds: int, spans_per_second: int = 20_000) -> None:
    cost = build_cost_model(window=None)
    traces_per_request = 128  # 512 spans, as benchmarks/ingest.py sends them
    chunks = []
    for _ in range(8):  # distinct bodies; each is re-keyed below so that no two halves share a key
        batch = build_batch("traces", ingest_bench.build_request(traces_per_request, time.time_ns()), "protobuf",
                            cost, (derive.derive,))
        chunks.append(batch.derived[derive.NAME].clients)
    batches_per_second = spans_per_second // (traces_per_request * 4)
    for label, max_pending in (("default cap (10,000)", 10_000), ("no cap", 10_000_000)):
        cpu, halves, _, _ = _feed(chunks, seconds, batches_per_second, max_pending, measure_memory=False)
        _, _, peak_pending, peak_bytes = _feed(chunks, seconds, batches_per_second, max_pending, measure_memory=True)
        print(f"pairing buffer, {label:20s} {peak_pending:7,d} halves waiting at most, "
              f"{peak_bytes / 1e6:6.1f} MB held at most, {cpu / halves * 1e6:.2f} us CPU a half "
              f"({spans_per_second:,} spans/s = {halves // seconds:,} client halves/s, {seconds} s simulated)")


def _feed(chunks: list[HalfChunk], seconds: int, batches_per_second: int, max_pending: int,
          measure_memory: bool) -> tuple[float, int, int, int]:
    """(CPU seconds in the buffer, halves fed, most halves waiting, most bytes held)."""
    clock = [0.0]
    graph = ServiceGraph(Registry(f.REGISTERED, max_series=2000), wait_s=10.0, max_pending=max_pending,
                         clock=lambda: clock[0])
    if measure_memory:
        tracemalloc.start()
        base = tracemalloc.take_snapshot()
    peak_bytes, peak_pending, cpu, halves = 0, 0, 0.0, 0
    for tick in range(seconds * batches_per_second):
        clock[0] = tick / batches_per_second
        template = chunks[tick % len(chunks)]
        chunk = replace(template, keys=[f"{tick:032x}" + key[32:] for key in template.keys])
        started = time.process_time()
        graph.add(chunk, None)
        if tick % (2 * batches_per_second) == 0:
            graph.expire()  # the sweep, every 2 s
        cpu += time.process_time() - started
        halves += len(chunk)
        peak_pending = max(peak_pending, graph.pending)
        if measure_memory and tick % batches_per_second == 0:
            held = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(base, "filename"))
            peak_bytes = max(peak_bytes, held)
    if measure_memory:
        tracemalloc.stop()
    return cpu, halves, peak_pending, peak_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", type=int, default=5000, help="distinct span names (2 series each)")
    parser.add_argument("--scrapes", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=30, help="simulated seconds of the pairing buffer")
    args = parser.parse_args()
    scrape_benchmark(args.names, args.scrapes)
    buffer_benchmark(args.seconds)


if __name__ == "__main__":
    main()
