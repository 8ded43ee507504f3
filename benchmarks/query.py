"""Query latency on a big store: seeds N spans (default 1M, 4-span LLM traces spread over the
last 24 h), starts a real `llmlens serve` on it, and prints the median milliseconds of the
API calls the UI makes most: the trace list, one trace, 24 h LLM stats and one session.

    python benchmarks/query.py [--spans 1000000] [--repeat 9] [--keep DIR]

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.ingest import build_request  # noqa: E402
from tests.server_process import ServerProcess  # noqa: E402


def seed(data_dir: Path, spans: int) -> None:
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
            pending.append(workers.submit(build_in_worker, "traces", build_request(per_request // 4, at), "protobuf"))
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
    args = parser.parse_args()

    data_dir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="llmlens-query-")) / "data"
    reuse = data_dir.exists() and any(data_dir.iterdir())
    if not reuse:
        started = time.perf_counter()
        seed(data_dir, args.spans)
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
            session_ms, session = timed(client, "/api/v1/sessions/s-7", args.repeat, start="-24h")
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
    print(f"{'one session (' + str(session['turns']) + ' turns, with previews)':44} {session_ms:9.1f}")


if __name__ == "__main__":
    main()
