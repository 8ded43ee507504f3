"""The cost of reading session, user, app and department inherited from a call's trace (the LLM calls
whose request span came in another export: query/call_context.py), measured interleaved.

Seeds a real `llmlens serve` over OTLP/HTTP with `--traces` traces over the last 24 h: a request span
setting session, user, app and department, and a chat call under it; half exported together (the call
gets them at ingest), half with the calls first and the request spans in a later export (the call reads
them from trace_index at query time). Then, each pair's two requests alternating, `--repeat` times:

- on the server (the whole answer over HTTP): the same endpoint grouped or filtered by an inherited
  fact (user: read over call_context) against a fact every call has itself (service: llm_calls as is);
- in one process on the same store after the server stops: the very SQL the server runs for the
  sessions list, costs and stats by user and a session search, against the same SQL with call_context's
  table replaced by the window's llm_calls (what the queries cost before inheritance).

    python benchmarks/call_context.py [--traces 20000] [--repeat 9]

Prints the median milliseconds of each side and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.otlp_requests import llm_attrs, make_span, post, trace_request  # noqa: E402
from tests.server_process import ServerProcess  # noqa: E402

from llmlens.server.query import call_context, costs, search, sessions, stats  # noqa: E402
from llmlens.server.query.llm_filter import LlmFilter  # noqa: E402
from llmlens.server.query.traceql import compile_query  # noqa: E402
from llmlens.server.query.window import Window  # noqa: E402
from llmlens.server.store import Store, open_backend  # noqa: E402

SECOND = 1_000_000_000
MS = 1_000_000
PER_REQUEST = 500
PLAIN = "(SELECT * FROM llm_calls WHERE Timestamp >= {start:DateTime64(9)} AND Timestamp <= {end:DateTime64(9)})"


def seed(url: str, traces: int, now_ns: int) -> None:
    for first in range(0, traces, PER_REQUEST):
        roots, calls, together = [], [], []
        for i in range(first, min(first + PER_REQUEST, traces)):
            tid = random.randbytes(16)
            start = now_ns - random.randint(120, 86_000) * SECOND
            root = make_span("POST /chat", trace_id=tid, start_ns=start, duration_ms=random.uniform(300, 3000),
                             attrs={"session.id": f"s-{i % 2000}", "user.id": f"u-{i % 200}",
                                    "llmlens.app": f"app-{i % 5}", "department": f"dept-{i % 3}"})
            call = make_span("chat gpt-4o-mini", trace_id=tid, parent=root.span_id, start_ns=start + 10 * MS,
                             duration_ms=random.uniform(100, 2500), attrs=llm_attrs("gpt-4o-mini", 400, 120))
            if i % 2:
                together += [root, call]
            else:
                roots.append(root)
                calls.append(call)
        for spans in (together, calls, roots):  # the split traces' calls before their request spans
            answer = post(url, "traces", trace_request(spans, service="chatbot"))
            assert answer.status_code == 200, answer.text


def interleaved(pairs: list[tuple[str, Callable[[], None], Callable[[], None]]], repeat: int) -> None:
    print(f"{'':58s} {'inherited':>10s} {'own':>10s} {'ratio':>6s}")
    for label, inherited, own in pairs:
        inherited(), own()  # warm both
        a, b = [], []
        for _ in range(repeat):
            for run, into in ((inherited, a), (own, b)):
                began = time.perf_counter()
                run()
                into.append((time.perf_counter() - began) * 1000)
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"{label:58s} {ma:8.1f} ms {mb:7.1f} ms {ma / mb:5.2f}x")


def over_http(url: str, repeat: int) -> None:
    def get(path: str, **params: str) -> Callable[[], None]:
        def run() -> None:
            answer = httpx.get(url + path, params={"start": "-24h", **params}, timeout=120)
            assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text[:200]}"
        return run

    interleaved([
        ("server: costs by user / by service", get("/api/v1/costs", group_by="user"),
         get("/api/v1/costs", group_by="service")),
        ("server: llm stats by user / by service", get("/api/v1/llm/stats", group_by="user"),
         get("/api/v1/llm/stats", group_by="service")),
        ("server: costs of one user / of one service", get("/api/v1/costs", user="u-7"),
         get("/api/v1/costs", service="chatbot")),
        ("server: search { session } / { model }", get("/api/v1/search", q='{ session = "s-7" }'),
         get("/api/v1/search", q='{ model = "gpt-4o" }')),
    ], repeat)


def in_process(data_dir: Path, repeat: int) -> None:
    store = Store(open_backend(data_dir=str(data_dir)))
    loop = asyncio.new_event_loop()
    now = datetime.now(UTC)
    window = Window(now - timedelta(hours=24), now)
    flt = LlmFilter.of(window)
    params = {**flt.params(), "limit": 51}

    def fetch(sql: str, extra: dict | None = None) -> Callable[[], None]:
        return lambda: loop.run_until_complete(store.fetch(sql, {**params, **(extra or {})}))

    def both(sql: str, extra: dict | None = None) -> tuple[Callable[[], None], Callable[[], None]]:
        assert call_context.CALLS in sql
        return fetch(sql, extra), fetch(sql.replace(call_context.CALLS, PLAIN), extra)

    where = flt.where()
    listing = sessions.LIST_SQL.replace("{where}", where).replace("{having}", "")
    breakdown = (costs.BREAKDOWN_SQL.replace("{key}", costs.DIMENSIONS["user"]).replace("{calls}", call_context.CALLS)
                 .replace("{where}", where))
    by_user = f"SELECT UserId, count(), sum(InputTokens), sum(CostUsd) FROM {call_context.CALLS} WHERE {where} GROUP BY UserId"
    compiled = compile_query('{ session = "s-7" }')
    found = search.search_sql(compiled)
    try:
        interleaved([
            ("in process: sessions list, 24 h", *both(listing)),
            ("in process: costs breakdown by user, 24 h", *both(breakdown)),
            ("in process: llm stats by user, 24 h", *both(by_user)),
            ("in process: search { session = \"s-7\" }, 24 h", *both(found, compiled.params)),
        ], repeat)
    finally:
        store.close()
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    random.seed(7)
    assert stats.INHERITED  # stats groups by user over call_context.CALLS (the server pair above)
    with tempfile.TemporaryDirectory(prefix="llmlens-context-bench-") as folder:
        data = Path(folder) / "data"
        server = ServerProcess(data).start()
        try:
            began = time.perf_counter()
            seed(server.url, args.traces, time.time_ns())
            print(f"seeded {args.traces} traces ({2 * args.traces} spans; half the calls exported before "
                  f"their request span) in {time.perf_counter() - began:.0f} s")
            time.sleep(2)
            over_http(server.url, args.repeat)
        finally:
            server.terminate()
        in_process(data, args.repeat)


if __name__ == "__main__":
    main()
