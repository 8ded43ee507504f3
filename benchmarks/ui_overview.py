"""How fast the overview page answers on a big store: 24 hours of 1 million stored spans.

Seeds a fresh embedded store (in a child process: chDB allows one process per data directory)
with N spans of LLM-app traces spread over the last 24 hours, 3 spans a trace (HTTP root,
retrieval step, chat call with a ~500-character prompt), and the matching llm_calls rows
(chat + retrieval). Then starts a real `llmlens serve` on it and prints:

- GET /api/v1/overview?start=-24h (everything the page shows): median and max of R runs,
  unfiltered and filtered by model;
- with --browser: the overview page in headless Chromium, navigation start to "rendered"
  (the page's own data-ready mark), median of R loads.

    python benchmarks/ui_overview.py [--spans 1000000] [--runs 7] [--browser]

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.server_process import ServerProcess  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# One row per span; t = trace number, r = role (0 root, 1 retrieval, 2 chat). Traces are spread
# evenly over the 24 hours before `now`; ids are hashes of (t, r), so they are unique and stable.
SPANS_SQL = """
INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName,
                         ResourceAttributes, SpanAttributes, Duration, StatusCode, StatusMessage)
SELECT
    start + toIntervalMillisecond(r * 10) AS Timestamp,
    lower(hex(MD5(toString(t)))) AS TraceId,
    substring(lower(hex(MD5(concat(toString(t), '/', toString(r))))), 1, 16) AS SpanId,
    if(r = 0, '', substring(lower(hex(MD5(concat(toString(t), '/0')))), 1, 16)) AS ParentSpanId,
    [ 'POST /chat', 'retrieve documents', concat('chat ', model) ][r + 1] AS SpanName,
    [ 'Server', 'Internal', 'Client' ][r + 1] AS SpanKind,
    service AS ServiceName,
    map('service.name', service, 'deployment.environment', 'bench') AS ResourceAttributes,
    multiIf(
        r = 0, map('http.request.method', 'POST', 'http.route', '/chat', 'http.response.status_code', if(err, '500', '200')),
        r = 1, map('llmlens.span.kind', 'retrieval', 'retrieval.documents', '4'),
        map('gen_ai.operation.name', 'chat', 'gen_ai.provider.name', 'openai', 'gen_ai.request.model', model,
            'gen_ai.usage.input_tokens', toString(input_tokens), 'gen_ai.usage.output_tokens', toString(output_tokens),
            'gen_ai.conversation.id', session, 'user.id', user,
            'gen_ai.input.messages', concat('[{"role":"user","parts":[{"type":"text","content":"', repeat('How do I get a refund for my last invoice? ', 12), '"}]}]'))
    ) AS SpanAttributes,
    toUInt64(if(r = 0, chat_ms + 80, if(r = 1, 60, chat_ms)) * 1000000) AS Duration,
    if(err AND r != 1, 'Error', 'Ok') AS StatusCode,
    if(err AND r != 1, 'upstream LLM failed', '') AS StatusMessage
FROM (
    SELECT intDiv(number, 3) AS t, number % 3 AS r,
           now64(9) - toIntervalMillisecond(toUInt64(86400000 * (t + 1) / {traces:UInt64})) AS start,
           ['chatbot', 'rag-api', 'support-bot', 'search'][t % 4 + 1] AS service,
           ['gpt-4o-mini', 'gpt-4o', 'claude-3-5-haiku', 'acme-llm-1'][cityHash64(t, 1) % 4 + 1] AS model,
           cityHash64(t, 2) % 50 = 0 AS err,
           100 + cityHash64(t, 3) % 900 AS input_tokens,
           if(err, 0, 20 + cityHash64(t, 4) % 400) AS output_tokens,
           300 + cityHash64(t, 5) % 2500 AS chat_ms,
           concat('sess-', toString(intDiv(t, 4))) AS session,
           concat('user-', toString(t % 500)) AS user
    FROM numbers({spans:UInt64})
)"""

LLM_SQL = """
INSERT INTO llm_calls (Timestamp, TraceId, SpanId, ServiceName, SpanName, Duration, IsError, Convention,
                       Operation, Provider, RequestModel, ResponseModel, InputTokens, OutputTokens, CostUsd,
                       Priced, Streaming, TtftMs, FinishReasons, ErrorType, App, Department, UserId, SessionId,
                       Input, Output)
SELECT Timestamp, TraceId, SpanId, ServiceName, SpanName, Duration, StatusCode = 'Error', 'otel',
       if(SpanKind = 'Client', 'chat', 'retrieval') AS op,
       if(op = 'chat', 'openai', ''),
       if(op = 'chat', SpanAttributes['gen_ai.request.model'], '') AS model,
       model,
       toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens']) AS inp,
       toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens']) AS outp,
       if(model IN ('acme-llm-1', ''), 0, (inp * 0.15 + outp * 0.6) / 1e6),
       model NOT IN ('acme-llm-1', ''),
       if(op = 'chat', true, NULL),
       if(op = 'chat' AND StatusCode != 'Error', toFloat64(80 + cityHash64(SpanId) % 400), NULL),
       if(op = 'chat' AND StatusCode != 'Error', ['stop'], []),
       if(StatusCode = 'Error' AND op = 'chat', 'RateLimitError', ''),
       ['support', 'search'][cityHash64(ServiceName) % 2 + 1], ['cx', 'research', 'sales'][cityHash64(TraceId) % 3 + 1],
       SpanAttributes['user.id'], SpanAttributes['gen_ai.conversation.id'],
       if(op = 'chat', 'user: How do I get a refund for my last invoice?', ''),
       if(op = 'chat', 'assistant: Refunds take five business days.', '')
FROM otel_traces WHERE SpanKind IN ('Client', 'Internal')"""


def seed(data_dir: Path, spans: int) -> None:
    """Runs in a child process: create the schema and insert the synthetic rows."""
    from llmlens.server.store import open_backend
    from llmlens.server.store.schema import migrate

    backend = open_backend(data_dir=str(data_dir))
    migrate(backend, ttl_days=30)
    started = time.perf_counter()
    backend.execute(SPANS_SQL, {"spans": spans, "traces": max(spans // 3, 1)})
    backend.execute(LLM_SQL)
    counts = backend.fetch("SELECT (SELECT count() FROM otel_traces) AS spans, (SELECT count() FROM llm_calls) AS llm")
    print(f"seeded {counts[0]['spans']:,} spans and {counts[0]['llm']:,} llm_calls rows "
          f"in {time.perf_counter() - started:.1f} s", flush=True)
    backend.close()


def time_api(server: ServerProcess, runs: int, **params: str) -> list[float]:
    timings = []
    with httpx.Client(base_url=server.url, timeout=120) as client:
        client.get("/api/v1/overview", params={"start": "-24h", **params}).raise_for_status()  # warm-up
        for _ in range(runs):
            started = time.perf_counter()
            response = client.get("/api/v1/overview", params={"start": "-24h", **params})
            timings.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    return timings


def time_browser(server: ServerProcess, runs: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    timings = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for i in range(runs + 1):
            page.goto(server.url + "/?range=24h")
            page.wait_for_selector("body[data-ready='ok']", timeout=120_000)
            if i:  # the first load warms the browser cache of the static files
                timings.append(float(page.evaluate("document.body.dataset.readyAt")))
        browser.close()
    return timings


def summary(label: str, timings: list[float]) -> str:
    return f"{label}: median {statistics.median(timings):.0f} ms, max {max(timings):.0f} ms over {len(timings)} runs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--browser", action="store_true", help="also time the page in headless Chromium")
    parser.add_argument("--seed-into", type=Path, help=argparse.SUPPRESS)  # the child process's entry
    args = parser.parse_args()
    if args.seed_into:
        seed(args.seed_into, args.spans)
        return
    workdir = Path(tempfile.mkdtemp(prefix="llmlens-ui-bench-"))
    try:
        data_dir = workdir / "data"
        subprocess.run([sys.executable, __file__, "--seed-into", str(data_dir), "--spans", str(args.spans)],
                       check=True)
        server = ServerProcess(data_dir).start(timeout=180)
        try:
            status = server.status()
            print(f"server up on a store of {status['spans']:,} spans")
            print(summary("GET /api/v1/overview?start=-24h", time_api(server, args.runs)))
            print(summary("GET /api/v1/overview?start=-24h&model=gpt-4o", time_api(server, args.runs, model="gpt-4o")))
            if args.browser:
                print(summary("overview page rendered in Chromium (navigation -> data-ready)",
                              time_browser(server, args.runs)))
        finally:
            server.terminate()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
