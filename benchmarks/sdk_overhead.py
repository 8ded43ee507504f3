"""Overhead of llmlens's SDK on real openai calls, next to peer instrumentations.

    python benchmarks/sdk_overhead.py [--calls 400] [--repeats 5] [--rows baseline,llmlens,openai-v2,...]
    python benchmarks/sdk_overhead.py --instructions [--rows ...]     # deterministic, needs valgrind

The real `openai` client calls the demo's mock LLM (a separate process, answering at once:
ttft 0, 0 ms/token) N times in a row, non-streaming ("chat") and streaming with
`stream_options.include_usage` ("stream"). Each (row, mode) runs in a fresh process; the
rows are repeated with their order rotated. Each figure is the median, over repeats, of the
row's value minus the uninstrumented baseline's value in the same repeat (paired, so a slow
spell of the machine cancels out); "spread" is the interquartile range of those differences.
Per call:

  wall    wall time of the N calls / N (the caller's view; export runs on other threads)
  cpu     process CPU time, all threads, from the first call to the end of the final flush / N
          (so span encoding and export count)
  p50     median single-call latency
  chunk   time per streamed chunk after the first (stream mode)
  rss     peak resident memory of the process
  init    import openai + import and set up the instrumentation
  bytes   OTLP bytes received by a local sink (the benchmark's own tiny HTTP server) / N

--instructions counts CPU instructions instead of time, with valgrind's callgrind (all threads
of the process, so export work counts), which does not depend on what else the machine is
doing: on a shared 2-core VM the timed figures of the same code vary by +-20% from process to
process, more than the overheads being compared. Per row it runs the chat loop at two call
counts (instructions per call = difference / difference in calls: start-up cancels) and the
stream loop at two answer lengths (max_tokens 64 vs 8: 20 more chunks a call; instructions per
chunk = difference / (calls x 20)); the baseline's figures are subtracted. Runs two at a time.
Timed background exports are put off to the final flush there (see QUIET_TIMERS), so that a count
does not depend on how many timer wake-ups fall into a run.

Peers (never a dependency of llmlens) run each in its own virtualenv, since they do not install
beside one another: made on first use with pip from the package index, cached under
$LLMLENS_BENCH_CACHE (default ~/.cache/llmlens/bench-venvs/<row>), and given the same `openai`
release as this interpreter so that the baseline applies to them too:
  openai-v2      opentelemetry-instrumentation-openai-v2==2.4b0 + opentelemetry-util-genai==0.4b0
  langfuse       langfuse (v3+ OTel-based), its drop-in openai client
  openinference  openinference-instrumentation-openai
  openllmetry    traceloop-sdk==0.62.4, its OTel contrib instrumentations pinned to one release
  openlit        openlit==1.45.0, the same pins, and openai<3 (it requires it): its figures are
                 taken against a baseline of bare openai of that release in its own virtualenv
                 (the row named baseline@openlit, whose openai version the output prints)
--no-venvs runs them in this interpreter instead (a row whose library is not installed here is
then reported as such and skipped); a virtualenv that cannot be made is reported and skipped.

By default no server runs: the mock LLM is asked once for each answer the benchmark uses (a chat
completion, and streams of 28 and 8 words with usage), and the children's `openai` clients get
those exact bytes from an httpx transport in the process (a stream as its SSE events, one read
each). The timed run then interleaves chat calls and both stream lengths in one process per row
and repeat, in the calling thread's CPU time; the rest of the process's CPU (span export on the
batch thread, metrics) is added per call; per chunk = (28-word stream - 8-word stream) / 20.
--socket calls the mock as a server over a loopback socket instead (the mode of earlier runs):
there the per-chunk figures depend on how the mock's chunks coalesce into socket reads, by more
than an instrumentation's work per chunk, so they do not measure it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ROWS = ("baseline", "llmlens", "openai-v2", "langfuse", "openinference", "openllmetry", "openlit")
MODES = ("chat", "stream")
MESSAGES = [{"role": "system", "content": "You are a helpful support assistant."},
            {"role": "user", "content": "How do I get a refund for a duplicate charge on my invoice?"}]
OTEL_HTTP = ("opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http")
# openai-v2 2.4b0 needs util-genai 0.4b0 (later ones moved its instruments module) and imports
# httpx, which openai's 3.x releases (on httpx2) no longer bring.
# traceloop-sdk and openlit require OTel contrib instrumentations unpinned (>=0.59b0 / >=0.52b0):
# left to itself pip backtracks into releases that pin different opentelemetry-instrumentation
# versions (logging 0.59b0 against redis 0.60b0+: ResolutionImpossible). One release of all of them
# resolves; traceloop-sdk also imports httpx, which openai 3.x no longer brings.
_CONTRIB = ("opentelemetry-instrumentation", "opentelemetry-semantic-conventions",
            *(f"opentelemetry-instrumentation-{name}" for name in (
                "aiohttp-client", "asgi", "django", "falcon", "fastapi", "flask", "httpx", "logging", "pyramid", "redis",
                "requests", "sqlalchemy", "starlette", "threading", "tornado", "urllib", "urllib3")))
_CONTRIB_PINS = tuple(f"{name}==0.66b1" for name in _CONTRIB)
PEER_PACKAGES = {"openai-v2": ("opentelemetry-instrumentation-openai-v2==2.4b0", "opentelemetry-util-genai==0.4b0",
                               "httpx", *OTEL_HTTP),
                 "langfuse": ("langfuse",),
                 "openinference": ("openinference-instrumentation-openai", *OTEL_HTTP),
                 "openllmetry": ("traceloop-sdk==0.62.4", "httpx", *_CONTRIB_PINS),
                 "openlit": ("openlit==1.45.0", *_CONTRIB_PINS)}
# A peer that does not accept this interpreter's `openai` gets a release it accepts, and then a
# baseline of its own: bare `openai` of that release, run in the peer's virtualenv.
PEER_OPENAI = {"openlit": "openai>=1.92,<3"}
PIP_TIMEOUT_S = 900  # pip's resolver can backtrack for most of an hour over a large dependency tree
REQUIRED_MODULE = {"llmlens": "llmlens.sdk", "openai-v2": "opentelemetry.instrumentation.openai_v2",
                   "langfuse": "langfuse", "openinference": "openinference.instrumentation.openai",
                   "openllmetry": "traceloop.sdk", "openlit": "openlit"}


# --- The OTLP sink (parent process) ------------------------------------------------------------

class Sink:
    """Accepts any POST with 200 and counts body bytes: stands in for a collector."""

    def __init__(self) -> None:
        sink = self
        self.bytes = 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("content-length") or 0)
                self.rfile.read(n)
                with sink.lock:
                    sink.bytes += n
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802
                body = b"{}"
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self) -> int:
        with self.lock:
            n, self.bytes = self.bytes, 0
        return n


# --- Instrumentation setups (child process) ----------------------------------------------------

def _otel_sdk(sink: str, service: str) -> tuple[Any, Any]:
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    res = Resource.create({"service.name": service})
    tp = TracerProvider(resource=res)
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{sink}/v1/traces")))
    trace.set_tracer_provider(tp)
    mp = MeterProvider(resource=res, metric_readers=[PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{sink}/v1/metrics"), export_interval_millis=60_000)])
    metrics.set_meter_provider(mp)
    return tp, mp


def setup_row(row: str, sink: str) -> tuple[Any, Any]:
    """Instrument this process as `row` does by default; returns (OpenAI client class, flush)."""
    import openai

    if row == "baseline":
        return openai.OpenAI, lambda: None
    if row == "llmlens":
        import llmlens

        llmlens.init(service_name="bench", app="bench", department="bench", endpoint=sink)
        return openai.OpenAI, llmlens.shutdown
    if row == "openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        tp, mp = _otel_sdk(sink, "bench")
        OpenAIInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
        return openai.OpenAI, lambda: (tp.shutdown(), mp.shutdown())
    if row == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor

        tp, mp = _otel_sdk(sink, "bench")
        OpenAIInstrumentor().instrument(tracer_provider=tp)
        return openai.OpenAI, lambda: (tp.shutdown(), mp.shutdown())
    if row == "langfuse":
        os.environ.update({"LANGFUSE_PUBLIC_KEY": "pk-lf-bench", "LANGFUSE_SECRET_KEY": "sk-lf-bench",
                           "LANGFUSE_HOST": sink, "LANGFUSE_BASE_URL": sink})
        from langfuse import get_client
        from langfuse.openai import OpenAI

        client = get_client()
        return OpenAI, client.shutdown
    if row == "openllmetry":
        from traceloop.sdk import Traceloop

        Traceloop.init(app_name="bench", api_endpoint=sink, disable_batch=False, telemetry_enabled=False)
        return openai.OpenAI, lambda: Traceloop.get_default_span_processor().force_flush()
    if row == "openlit":
        import openlit

        openlit.init(otlp_endpoint=sink, application_name="bench", disable_batch=False)
        return openai.OpenAI, lambda: None
    raise SystemExit(f"unknown row {row}")


# --- Canned responses (in-process mode) ----------------------------------------------------------

CANNED_MAX_TOKENS = (64, 8)  # the stream rows' two answer lengths (28 and 8 words)


def _capture_canned(base_url: str, path: str) -> None:
    """Ask the mock LLM once for each response the benchmark uses and save its exact bytes.

    A streamed answer is kept as its SSE events, handed to the client one read each, as a socket
    delivers them when the server writes them one at a time.
    """
    import urllib.request

    def fetch(body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(f"{base_url}/chat/completions", data=json.dumps(body).encode(),
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the loopback mock
            raw = response.read()
            content_type = response.headers.get("content-type", "")
        if body.get("stream"):
            events = [e + b"\n\n" for e in raw.split(b"\n\n") if e]
            return {"content_type": content_type, "events": [e.decode() for e in events]}
        return {"content_type": content_type, "events": [raw.decode()]}

    canned = {"chat": fetch({"model": "gpt-4o-mini", "messages": MESSAGES, "temperature": 0.2, "max_tokens": 64})}
    for max_tokens in CANNED_MAX_TOKENS:
        canned[f"stream-{max_tokens}"] = fetch({"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": max_tokens,
                                                "stream": True, "stream_options": {"include_usage": True}})
    pathlib.Path(path).write_text(json.dumps(canned))


def _canned_http_client(path: str) -> Any:
    """An HTTP client of the library this `openai` uses (httpx2 for 3.x, httpx before) whose
    transport answers every request with the saved bytes: no socket, no server process."""
    import openai._base_client as base_client

    hx = getattr(base_client, "httpx2", None) or base_client.httpx
    canned = json.loads(pathlib.Path(path).read_text())
    answers = {key: (value["content_type"], [e.encode() for e in value["events"]]) for key, value in canned.items()}

    class Events(hx.SyncByteStream):
        def __init__(self, events: list[bytes]) -> None:
            self._events = events

        def __iter__(self) -> Iterator[bytes]:
            yield from self._events

    class CannedTransport(hx.BaseTransport):
        def handle_request(self, request: Any) -> Any:
            body = json.loads(request.content)
            key = f"stream-{body.get('max_tokens')}" if body.get("stream") else "chat"
            content_type, events = answers[key]
            return hx.Response(200, headers={"content-type": content_type}, stream=Events(events), request=request)

    return hx.Client(transport=CannedTransport())


def run_child(row: str, mode: str, calls: int, warmup: int, base_url: str, sink: str,
              max_tokens: int = 64) -> dict[str, Any]:
    t0 = time.perf_counter()
    client_class, flush = setup_row(row, sink)
    init_s = time.perf_counter() - t0
    if base_url.startswith("canned:"):
        client = client_class(base_url="http://mock-llm.invalid/v1", api_key="bench-key", max_retries=0,
                              http_client=_canned_http_client(base_url.removeprefix("canned:")))
        if mode == "mixed":
            return _run_mixed(client, flush, calls, warmup, init_s)
    else:
        client = client_class(base_url=base_url, api_key="bench-key", max_retries=0)
    stream = mode == "stream"

    def one() -> float | None:
        if not stream:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0.2, max_tokens=64)
            return None
        first = None
        n = 0
        for _chunk in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=max_tokens,
                                                     stream=True, stream_options={"include_usage": True}):
            if first is None:
                first = time.perf_counter()
            n += 1
        return (time.perf_counter() - first) / max(1, n - 1) if first is not None else None

    for _ in range(warmup):
        one()
    latencies, per_chunk = [], []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(calls):
        started = time.perf_counter()
        chunk = one()
        latencies.append(time.perf_counter() - started)
        if chunk is not None:
            per_chunk.append(chunk)
    wall = time.perf_counter() - wall0
    flush()
    cpu = time.process_time() - cpu0
    return {
        "wall_us": wall / calls * 1e6,
        "cpu_us": cpu / calls * 1e6,
        "p50_us": statistics.median(latencies) * 1e6,
        "chunk_us": statistics.median(per_chunk) * 1e6 if per_chunk else None,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "init_ms": init_s * 1e3,
    }


def _run_mixed(client: Any, flush: Any, calls: int, warmup: int, init_s: float) -> dict[str, Any]:
    """Chat calls and streamed calls of both lengths, interleaved in one process (so a slow spell
    of the machine touches all three alike), each timed in this thread's CPU time; then the
    final flush. CPU of the other threads (the span export, metrics) is the process's CPU from
    the first call to the end of the flush less this thread's, spread over every call."""
    thread_ns = time.thread_time_ns

    def chat() -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0.2, max_tokens=64)

    def stream(max_tokens: int) -> None:
        for _chunk in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=max_tokens,
                                                     stream=True, stream_options={"include_usage": True}):
            pass

    long_tokens, short_tokens = CANNED_MAX_TOKENS
    kinds = (("chat", chat), ("long", lambda: stream(long_tokens)), ("short", lambda: stream(short_tokens)))
    for _ in range(warmup):
        for _kind, one in kinds:
            one()
    times: dict[str, list[int]] = {kind: [] for kind, _ in kinds}
    cpu0, thread0 = time.process_time_ns(), thread_ns()
    for _ in range(calls):
        for kind, one in kinds:
            started = thread_ns()
            one()
            times[kind].append(thread_ns() - started)
    flush()
    cpu, thread = time.process_time_ns() - cpu0, thread_ns() - thread0
    return {
        **{f"{kind}_us": statistics.median(values) / 1e3 for kind, values in times.items()},
        "background_us": max(0, cpu - thread) / (calls * len(kinds)) / 1e3,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "init_ms": init_s * 1e3,
    }


# --- Orchestration (parent process) --------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _mock_llm() -> Iterator[str]:
    """The demo's mock LLM as its own process, answering at once; yields its base URL."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llmlens.demo.mock_llm", "--host", "127.0.0.1", "--port",
                             str(port), "--ttft-ms", "0", "--ms-per-token", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("mock LLM did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def _llm_url(args: argparse.Namespace) -> Iterator[str]:
    """What the children call: the mock LLM over a socket (--socket), or its saved answers."""
    if args.socket:
        with _mock_llm() as base_url:
            yield base_url
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sdk-overhead-") as tmp:
        path = os.path.join(tmp, "canned.json")
        with _mock_llm() as base_url:
            _capture_canned(base_url, path)
        yield f"canned:{path}"  # the mock has stopped: no server process runs beside the children


def _transport_text(args: argparse.Namespace) -> str:
    return ("the mock LLM over a loopback socket" if args.socket else
            "in-process: the mock LLM's saved response bytes through an httpx transport, no socket")


def _openai_text(args: argparse.Namespace, row: str) -> str:
    """' (openai X.Y.Z)' for a row on another openai release than this interpreter's, else ''."""
    from importlib.metadata import version

    python = args.pythons.get(row, sys.executable)
    if python == sys.executable:
        return ""
    cache = args.__dict__.setdefault("openai_versions", {})
    if python not in cache:
        out = subprocess.run([python, "-c", "from importlib.metadata import version; print(version('openai'))"],
                             capture_output=True, text=True)
        cache[python] = out.stdout.strip() or "?"
    return "" if cache[python] == version("openai") else f" (openai {cache[python]})"


def _venv_python(row: str) -> str | None:
    """The interpreter of `row`'s own virtualenv, made (and cached) on first use; None if pip fails."""
    from importlib.metadata import version

    packages = (PEER_OPENAI.get(row) or f"openai=={version('openai')}", *PEER_PACKAGES[row])
    root = os.environ.get("LLMLENS_BENCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "llmlens",
                                                                 "bench-venvs")
    venv = os.path.join(root, row)
    python = os.path.join(venv, "bin", "python")
    marker = os.path.join(venv, "llmlens-bench-packages.txt")
    wanted = "\n".join(packages)
    if os.path.exists(marker) and pathlib.Path(marker).read_text() == wanted:
        return python
    print(f"  making a virtualenv for {row} ({' '.join(packages)}) in {venv}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
    try:
        out = subprocess.run([python, "-m", "pip", "install", "-q", *packages], capture_output=True, text=True,
                             timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(f"! {row}: pip install did not finish in {PIP_TIMEOUT_S} s (dependency resolution)", file=sys.stderr)
        return None
    if out.returncode != 0:
        print(f"! {row}: pip install failed:\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    pathlib.Path(marker).write_text(wanted)
    return python


def _interpreters(rows: list[str], venvs: bool) -> tuple[dict[str, str], list[str]]:
    """(row -> python executable, rows that cannot run)."""
    pythons, missing = {}, []
    for row in rows:
        python = _venv_python(row) if venvs and row in PEER_PACKAGES else (sys.executable if _installed(row) else None)
        if python is None:
            missing.append(row)
        else:
            pythons[row] = python
    return pythons, missing


def _installed(row: str) -> bool:
    module = REQUIRED_MODULE.get(row)
    if module is None:
        return True
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _fmt(value: float | None, digits: int = 0, signed: bool = True) -> str:
    if value is None:
        return "-"
    return f"{value:+,.{digits}f}" if signed else f"{value:,.{digits}f}"


def _baseline_of(row: str) -> str:
    """The row a peer's figures are taken against: bare openai of the same release."""
    return f"baseline@{row}" if row in PEER_OPENAI else "baseline"


def _with_baselines(rows: list[str], pythons: dict[str, str]) -> list[str]:
    """`rows` plus a baseline row (in the peer's own interpreter) for each peer on its own openai."""
    out = list(rows)
    for row in rows:
        base = _baseline_of(row)
        if base not in out:
            pythons[base] = pythons[row]
            out.insert(out.index(row), base)
    return out


def _child_command(args: argparse.Namespace, row: str, mode: str, base_url: str, sink: str, calls: int,
                   max_tokens: int = 64) -> list[str]:
    return [args.pythons[row], os.path.abspath(__file__), "--calls", str(calls), "--warmup", str(args.warmup),
            "--max-tokens", str(max_tokens), "--child", row.split("@")[0], mode, base_url, sink]


def _paired(results: dict[tuple[str, str], list[dict[str, Any]]], row: str, mode: str,
            key: str) -> tuple[float | None, float | None]:
    """Median and interquartile range of (row - baseline) over the repeats that have both."""
    ours, base = results.get((row, mode), []), results.get((_baseline_of(row), mode), [])
    diffs = [a[key] - b[key] for a, b in zip(ours, base, strict=False)
             if a.get(key) is not None and b.get(key) is not None]
    if not diffs:
        return None, None
    if len(diffs) < 4:
        return statistics.median(diffs), max(diffs) - min(diffs)
    q = statistics.quantiles(diffs, n=4)
    return statistics.median(diffs), q[2] - q[0]


def timed_canned(args: argparse.Namespace, rows: list[str], missing: list[str]) -> int:
    """Per row and repeat one process runs chat and streamed calls interleaved (see _run_mixed)."""
    sink = Sink()
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    loads = [os.getloadavg()[0]]
    with _llm_url(args) as base_url:
        for repeat in range(args.repeats):
            order = rows[repeat % len(rows):] + rows[:repeat % len(rows)]
            for row in order:
                sink.take()
                out = subprocess.run(_child_command(args, row, "mixed", base_url, sink.url, args.calls),
                                     capture_output=True, text=True, timeout=1800)
                if out.returncode != 0:
                    print(f"! {row} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                    result: dict[str, Any] = {}
                else:
                    result = json.loads(out.stdout.strip().splitlines()[-1])
                    result["bytes"] = sink.take() / ((args.calls + args.warmup) * 3)
                    long_tokens, short_tokens = CANNED_MAX_TOKENS
                    result["chunk_us"] = (result["long_us"] - result["short_us"]) / (28 - short_tokens)
                    result["e2e_us"] = result["chat_us"] + result["background_us"]
                    print(f"  repeat {repeat + 1} {row:22} chat {result['chat_us']:7.0f} us caller + "
                          f"{result['background_us']:5.0f} us other threads (load {os.getloadavg()[0]:.1f})",
                          file=sys.stderr)
                loads.append(os.getloadavg()[0])
                results.setdefault((row, "mixed"), []).append(result)

    def cell(row: str, key: str, digits: int = 0, unit: str = " us", spread: bool = True) -> str:
        value, iqr = _paired(results, row, "mixed", key)
        text = _fmt(value, digits) + unit
        return f"{text} (±{iqr / 2:,.{digits}f})" if spread and iqr is not None else text

    def med(row: str, key: str) -> float | None:
        values = [r[key] for r in results.get((row, "mixed"), []) if r.get(key) is not None]
        return statistics.median(values) if values else None

    print(f"\nsdk_overhead: {_transport_text(args)}; {args.calls} calls of each kind x {args.repeats} repeats per "
          f"row, one process per row and repeat, the kinds interleaved in it, rows rotated; python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {min(loads):.1f}-{max(loads):.1f}")
    for base in (r for r in rows if r.startswith("baseline")):
        print(f"{base}{_openai_text(args, base)}: chat {_fmt(med(base, 'chat_us'), signed=False)} us/call CPU, "
              f"stream of 28 chunks {_fmt(med(base, 'long_us'), signed=False)} us/call, "
              f"{_fmt(med(base, 'chunk_us'), 1, signed=False)} us/chunk")
    print("caller = the calling thread's CPU (median call); other threads = the rest of the process's CPU (span "
          "export, metrics) per call, final flush included; end to end = the two added")
    print("figures: median over repeats of the difference to the baseline of the same repeat; (±) half the "
          "interquartile range\n")
    header = ("row", "chat caller", "other threads", "chat end to end", "stream call (28 chunks)", "per chunk",
              "peak RSS", "import+init", "OTLP B/call")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        if row.startswith("baseline"):
            continue
        print("| " + " | ".join([
            row + _openai_text(args, row), cell(row, "chat_us"), cell(row, "background_us"), cell(row, "e2e_us"),
            cell(row, "long_us"), cell(row, "chunk_us", 2), cell(row, "rss_mb", 1, " MB", False),
            cell(row, "init_ms", 0, " ms", False), _fmt(med(row, "bytes"), 0, signed=False)]) + " |")
    for row in missing:
        print(f"| {row} | could not be installed ({' '.join(PEER_PACKAGES.get(row, ()))}) |")
    peers = [r for r in rows if not r.startswith("baseline")]
    _verdict({r: _paired(results, r, "mixed", "e2e_us")[0] for r in peers},
             {r: _paired(results, r, "mixed", "chunk_us")[0] for r in peers}, "us", 2)
    return 0


def timed(args: argparse.Namespace, rows: list[str], missing: list[str]) -> int:
    sink = Sink()
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with _mock_llm() as base_url:
        for repeat in range(args.repeats):
            order = rows[repeat % len(rows):] + rows[:repeat % len(rows)]
            for mode in MODES:
                for row in order:
                    sink.take()
                    out = subprocess.run(_child_command(args, row, mode, base_url, sink.url, args.calls),
                                         capture_output=True, text=True, timeout=600)
                    if out.returncode != 0:
                        print(f"! {row}/{mode} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                        result: dict[str, Any] = {}
                    else:
                        result = json.loads(out.stdout.strip().splitlines()[-1])
                        result["bytes"] = sink.take() / (args.calls + args.warmup)
                        print(f"  repeat {repeat + 1} {mode:6} {row:13} cpu {result['cpu_us']:8.0f} us/call",
                              file=sys.stderr)
                    results.setdefault((row, mode), []).append(result)

    def med(row: str, mode: str, key: str) -> float | None:
        values = [r[key] for r in results.get((row, mode), []) if r.get(key) is not None]
        return statistics.median(values) if values else None

    def cell(row: str, mode: str, key: str, digits: int = 0, unit: str = " us", spread: bool = False) -> str:
        value, iqr = _paired(results, row, mode, key)
        text = _fmt(value, digits) + unit
        return f"{text} (±{iqr / 2:,.{digits}f})" if spread and iqr is not None else text

    print(f"\nsdk_overhead: {args.calls} calls x {args.repeats} repeats per row and mode, fresh process each, "
          f"order rotated; python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print(f"baseline: chat {_fmt(med('baseline', 'chat', 'wall_us'), signed=False)} us/call wall, "
          f"{_fmt(med('baseline', 'chat', 'cpu_us'), signed=False)} us/call CPU; stream "
          f"{_fmt(med('baseline', 'stream', 'wall_us'), signed=False)} us/call wall, "
          f"{_fmt(med('baseline', 'stream', 'chunk_us'), 1, signed=False)} us/chunk")
    print("figures: median of paired differences to the baseline; (±) half the interquartile range\n")
    header = ("row", "chat wall", "chat CPU", "chat p50", "stream wall", "stream CPU", "per chunk",
              "peak RSS", "import+init", "OTLP B/call")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        if row.startswith("baseline"):
            continue
        cells = [
            row, cell(row, "chat", "wall_us"), cell(row, "chat", "cpu_us", spread=True), cell(row, "chat", "p50_us"),
            cell(row, "stream", "wall_us"), cell(row, "stream", "cpu_us", spread=True),
            cell(row, "stream", "chunk_us", 2, spread=True), cell(row, "chat", "rss_mb", 1, " MB"),
            cell(row, "chat", "init_ms", 0, " ms"), _fmt(med(row, "chat", "bytes"), 0, signed=False),
        ]
        print("| " + " | ".join(cells) + " |")
    for row in missing:
        print(f"| {row} | could not be installed ({' '.join(PEER_PACKAGES.get(row, ()))}) |")
    _verdict({r: _paired(results, r, "chat", "cpu_us")[0] for r in rows if not r.startswith("baseline")},
             {r: _paired(results, r, "stream", "chunk_us")[0] for r in rows if not r.startswith("baseline")}, "us", 2)
    return 0


# The goal: per chat call and per streamed chunk, at most a third of the best peer's overhead; on the
# timed run also at most 150 us of CPU per chat call (caller plus export) and 3 us per chunk.
RATIO_GOAL = 1 / 3
GOAL_US = {"chat": 150, "per-chunk": 3}


def _verdict(chat: dict[str, float | None], chunk: dict[str, float | None], unit: str, digits: int) -> None:
    print()
    for what, values, places in (("chat", chat, 0), ("per-chunk", chunk, digits)):
        ours = values.get("llmlens")
        if ours is None:
            continue
        peers = {r: v for r, v in values.items() if r != "llmlens" and v is not None}
        text = f"llmlens {what} overhead {ours:+,.{places}f} {unit}"
        goals, met = ["ratio <= 1/3"], True
        if peers:
            best = min(peers, key=lambda r: peers[r])
            text += f" vs best peer {best} {peers[best]:+,.{places}f} {unit}"
            if peers[best] > 0:
                text += f" (ratio {ours / peers[best]:.2f})"
                met = ours <= peers[best] * RATIO_GOAL
            else:
                text += " (no ratio: the peer is at or below the baseline)"
        if unit == "us":
            goals.append(f"<= {GOAL_US[what]} us")
            met = met and ours <= GOAL_US[what]
        print(f"{text}; goal {', '.join(goals)}: {'met' if met else 'not met'}")


# --- Instruction counts (valgrind) ---------------------------------------------------------------

SHORT_ANSWER_TOKENS = 8  # the mock answers this prompt with 28 words; max_tokens 8 cuts it to 8


# Background exports on a timer: under valgrind a run lasts minutes, and how many timed exports
# fall into it (each with its HTTP request) depends on the machine's speed, by more than the
# per-chunk work measured (-67k..+38k instructions a chunk from run to run). With these delays the
# spans are exported once, at the final flush (the queues hold every span of a run), so a count
# includes each span's encoding and not the number of timer wake-ups; the same for every row.
QUIET_TIMERS = {"OTEL_BSP_SCHEDULE_DELAY": "3600000", "OTEL_METRIC_EXPORT_INTERVAL": "3600000",
                "LLMLENS_METRICS_EXPORT_INTERVAL_MS": "3600000", "LANGFUSE_FLUSH_INTERVAL": "3600"}


def _instructions(command: list[str]) -> int:
    # A fixed hash seed: set and dict layouts, and so the count, are the same from run to run.
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
                         capture_output=True, text=True, timeout=3600,
                         env={**os.environ, **QUIET_TIMERS, "PYTHONHASHSEED": "0"})
    for line in out.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1])
    raise RuntimeError(f"valgrind failed for {command[-4:]}:\n{out.stderr[-2000:]}")


def instructions(args: argparse.Namespace, rows: list[str], missing: list[str]) -> int:
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    low, high = max(1, args.calls // 4), args.calls
    # (key, mode, calls, max_tokens): chat at two call counts, stream at two answer lengths.
    runs = [(("chat", low), "chat", low, 64), (("chat", high), "chat", high, 64),
            (("long", high), "stream", high, 64), (("short", high), "stream", high, SHORT_ANSWER_TOKENS)]
    sink = Sink()
    with _llm_url(args) as base_url, ThreadPoolExecutor(max_workers=2) as pool:
        jobs = {(row, *key): pool.submit(_instructions, _child_command(args, row, mode, base_url, sink.url, calls,
                                                                     max_tokens))
                for row in rows for key, mode, calls, max_tokens in runs}
        counts = {key: job.result() for key, job in jobs.items()}
    per_call = {row: (counts[(row, "chat", high)] - counts[(row, "chat", low)]) / (high - low) for row in rows}
    extra_chunks = 28 - SHORT_ANSWER_TOKENS
    per_chunk = {row: (counts[(row, "long", high)] - counts[(row, "short", high)]) / (high * extra_chunks)
                 for row in rows}
    print(f"\nsdk_overhead --instructions: valgrind callgrind, all threads; chat {low} vs {high} calls, stream "
          f"{high} calls of 28 vs {SHORT_ANSWER_TOKENS} chunks; {_transport_text(args)}; python "
          f"{sys.version.split()[0]}")
    for base in (r for r in rows if r.startswith("baseline")):
        print(f"{base}{_openai_text(args, base)}: {per_call[base]:,.0f} instructions per chat call, "
              f"{per_chunk[base]:,.0f} per streamed chunk")
    print()
    print("| row | chat call | per chunk |")
    print("|---|---|---|")
    chat = {r: per_call[r] - per_call[_baseline_of(r)] for r in rows if not r.startswith("baseline")}
    chunk = {r: per_chunk[r] - per_chunk[_baseline_of(r)] for r in rows if not r.startswith("baseline")}
    for row in chat:
        print(f"| {row}{_openai_text(args, row)} | {chat[row]:+,.0f} instr | {chunk[row]:+,.0f} instr |")
    for row in missing:
        print(f"| {row} | could not be installed ({' '.join(PEER_PACKAGES.get(row, ()))}) |")
    _verdict(chat, chunk, "instr", 0)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=400, help="calls per process (--instructions: 200 is plenty)")
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--instructions", action="store_true", help="count instructions with valgrind instead of timing")
    p.add_argument("--no-venvs", action="store_true", help="run the peers in this interpreter, not their own venvs")
    p.add_argument("--socket", action="store_true",
                   help="call the mock LLM as a server over a loopback socket instead of its saved answers in-process")
    p.add_argument("--max-tokens", type=int, default=64, help=argparse.SUPPRESS)
    p.add_argument("--child", nargs=4, metavar=("ROW", "MODE", "BASE_URL", "SINK"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        row, mode, base_url, sink = args.child
        print(json.dumps(run_child(row, mode, args.calls, args.warmup, base_url, sink, args.max_tokens)))
        return 0

    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    if "baseline" not in rows:
        rows.insert(0, "baseline")
    args.pythons, missing = _interpreters(rows, not args.no_venvs)
    rows = _with_baselines([r for r in rows if r not in missing], args.pythons)
    if args.instructions:
        return instructions(args, rows, missing)
    return timed(args, rows, missing) if args.socket else timed_canned(args, rows, missing)


if __name__ == "__main__":
    raise SystemExit(main())
