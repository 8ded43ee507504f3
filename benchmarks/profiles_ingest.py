"""What profiles cost the server: ingest CPU per sample, and flame-graph query time over one hour of
3 services at 100 Hz.

Profiles are shaped as llmlens's SDK sends them: one every 10 s per service, 4 busy threads sampled
at 100 Hz (4,000 samples), over ~300 distinct stacks 15-45 frames deep drawn from 600 functions, each
sample labelled with the span it was taken in (a thread serves ~20 requests in 10 s), so a profile has
~1,500 sample entries (stack x span x thread). Values are pprof cpu nanoseconds, gzip'ed.

1. Ingest, in process: decode + normalise + freeze (what an ingest worker does) and the commit to an
   embedded store (the writer), CPU per sample and per entry. Then over HTTP: the profiles POSTed to
   a real `llmlens serve` (/ingest, format=pprof), the server's CPU (its process and its ingest
   workers, from /proc) per sample.
2. Query: a real server holding one hour of 3 services (360 profiles each, 1.4M samples a service):
   GET /api/v1/profiles/flamegraph for each service over the hour (median of --repeats), with a
   span_name filter, and a diff of the two half hours.

    python benchmarks/profiles_ingest.py [--profiles 60] [--repeats 5] [--skip-query]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.profile_bodies import PprofBuilder  # noqa: E402
from tests.server_process import ServerProcess  # noqa: E402

from llmlens.server.normalise import build_cost_model  # noqa: E402
from llmlens.server.receive.profiles import ingest_request  # noqa: E402
from llmlens.server.receive.workers import build_batch  # noqa: E402
from llmlens.server.store import Store, open_backend  # noqa: E402

THREADS, HZ, SECONDS = 4, 100, 10
SAMPLES_PER_PROFILE = THREADS * HZ * SECONDS
SERVICES = ("chatbot", "retriever", "mock-llm")
TICKS = os.sysconf("SC_CLK_TCK")


class Shapes:
    """Deterministic stacks: paths down a random call tree of 600 functions."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        functions = [(f"fn_{i}", f"pkg/mod_{i % 40}.py", 10 + i) for i in range(600)]
        self.stacks = []
        for _ in range(300):
            depth = rng.randint(15, 45)
            self.stacks.append([functions[0]] + [functions[rng.randrange(1, 600)] for _ in range(depth - 1)])
        self.weights = [1 / (i + 1) for i in range(len(self.stacks))]  # a few hot stacks, a long tail
        self.rng = rng

    def profile(self, span_names: bool = False) -> bytes:
        builder = PprofBuilder()
        for thread in range(THREADS):
            counts: dict[tuple[int, str], int] = {}
            spans = [os.urandom(8).hex() for _ in range(20)]
            for tick in range(HZ * SECONDS):
                stack = self.rng.choices(range(len(self.stacks)), self.weights)[0]
                key = (stack, spans[tick * len(spans) // (HZ * SECONDS)])
                counts[key] = counts.get(key, 0) + 1
            for (stack, span), n in counts.items():
                labels = {"span_id": span, "trace_id": span * 2, "thread_name": f"worker-{thread}"}
                if span_names:
                    labels["span_name"] = "chat" if stack % 2 else "retrieve"
                builder.sample(self.stacks[stack], n, labels)
        return builder.bytes()


def cpu_seconds(pid: int) -> float:
    """CPU of a process and its live children (the ingest workers), from /proc."""
    total = 0.0
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                pids.append(int(entry.name))
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def ingest_in_process(bodies: list[bytes]) -> None:
    cost = build_cost_model()
    now = int(time.time())
    envelopes = [ingest_request({"name": "bench.cpu", "format": "pprof", "from": str(now - 10 * i)}, "", body)
                 for i, body in enumerate(bodies)]
    started = time.process_time()
    batches = [build_batch("pyroscope", envelope, "protobuf", cost) for envelope in envelopes]
    build_s = time.process_time() - started
    entries = sum(b.arrow["llmlens_profile_samples"].num_rows for b in batches)
    stacks = sum(b.arrow["llmlens_profile_stacks"].num_rows for b in batches)
    samples = SAMPLES_PER_PROFILE * len(bodies)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(open_backend(data_dir=tmp))
        try:
            started = time.process_time()
            wall = time.perf_counter()
            for batch in batches:
                store.write_sync(batch, timeout=120)
            commit_s, commit_wall = time.process_time() - started, time.perf_counter() - wall
        finally:
            store.close()
    print(f"in process, {len(bodies)} profiles: {samples:,} samples as {entries:,} sample rows over "
          f"{stacks:,} stack rows ({sum(map(len, bodies)) / len(bodies) / 1024:.0f} KiB gzip'ed a profile)")
    print(f"  decode + normalise + freeze: {build_s / samples * 1e6:.2f} us a sample, "
          f"{build_s / entries * 1e6:.2f} us a row ({build_s / len(bodies) * 1e3:.1f} ms a profile)")
    print(f"  commit to the embedded store: {commit_s / samples * 1e6:.2f} us CPU a sample "
          f"({commit_wall / len(bodies) * 1e3:.1f} ms wall a profile)")


def ingest_over_http(bodies: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "data").start()
        try:
            assert server.proc is not None
            time.sleep(2)  # let the workers finish starting
            now = int(time.time())
            with httpx.Client(timeout=120) as client:
                before = cpu_seconds(server.proc.pid)
                wall = time.perf_counter()
                for i, body in enumerate(bodies):
                    answer = client.post(server.url + "/ingest", content=body,
                                         params={"name": "bench.cpu", "format": "pprof", "from": now - 10 * i})
                    assert answer.status_code == 200, answer.text
                wall = time.perf_counter() - wall
                used = cpu_seconds(server.proc.pid) - before
        finally:
            server.terminate()
    samples = SAMPLES_PER_PROFILE * len(bodies)
    print(f"over HTTP (/ingest, one sender): server CPU {used / samples * 1e6:.2f} us a sample "
          f"({used / len(bodies) * 1e3:.1f} ms a profile), {len(bodies) / wall:.1f} profiles/s")


def query_benchmark(shapes: Shapes, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "data").start()
        try:
            now = int(time.time())
            body_pool = [shapes.profile(span_names=True) for _ in range(12)]  # reused: the shape is what counts
            started = time.perf_counter()
            with httpx.Client(timeout=120) as client:
                for service in SERVICES:
                    for i in range(360):
                        answer = client.post(server.url + "/ingest", content=body_pool[i % len(body_pool)],
                                             params={"name": f"{service}.cpu", "format": "pprof", "from": now - 3600 + 10 * i})
                        assert answer.status_code == 200, answer.text
            print(f"seeded 3 services x 360 profiles ({3 * 360 * SAMPLES_PER_PROFILE:,} samples) "
                  f"in {time.perf_counter() - started:.0f} s")
            start, middle = now - 3600 - 5, now - 1800
            cases = [
                ("flame graph, one service, 1 h", "/api/v1/profiles/flamegraph", {"start": "-62m"}),
                ("flame graph, one span name, 1 h", "/api/v1/profiles/flamegraph", {"start": "-62m", "span_name": "chat"}),
                ("diff of the two half hours", "/api/v1/profiles/diff",
                 {"baseline_start": _iso(start), "baseline_end": _iso(middle),
                  "comparison_start": _iso(middle), "comparison_end": _iso(now + 5)}),
            ]
            for label, path, params in cases:
                times = []
                for service in SERVICES:
                    for _ in range(repeats):
                        began = time.perf_counter()
                        answer = httpx.get(server.url + path, params={"service": service, **params}, timeout=120)
                        times.append(time.perf_counter() - began)
                        assert answer.status_code == 200, answer.text
                tree = answer.json()
                total = tree.get("value", 0)
                print(f"{label}: median {statistics.median(times) * 1e3:.0f} ms, max {max(times) * 1e3:.0f} ms "
                      f"({len(times)} queries; {total:,} samples, {len(answer.content) / 1024:.0f} KiB of JSON)")
        finally:
            server.terminate()


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=60, help="profiles for the ingest measurements")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-query", action="store_true")
    args = parser.parse_args()
    shapes = Shapes(seed=18)
    bodies = [shapes.profile() for _ in range(args.profiles)]
    ingest_in_process(bodies)
    ingest_over_http(bodies)
    if not args.skip_query:
        query_benchmark(shapes, args.repeats)


if __name__ == "__main__":
    main()
