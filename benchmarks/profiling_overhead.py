"""CPU overhead of continuous profiling at 100 Hz on the demo's chatbot under load.

    python benchmarks/profiling_overhead.py [--seconds 15] [--repeats 3] [--concurrency 8]
                                            [--rows off,llmlens,pyroscope] [--hz 100]

The demo's mock LLM (answering at once), retriever and RAG chatbot run as separate processes, as
`llmlens demo` runs them, all sending telemetry to a local sink (the benchmark's own HTTP server,
answering 200 to every POST and counting the bytes). The benchmark drives the chatbot's
POST /v1/chat from `--concurrency` threads, a new session each request, and measures the chatbot
process alone for `--seconds` after a warm-up. Rows (the chatbot restarted for each, its traces,
metrics and logs on in all of them):

  off        no profiler
  llmlens    init(profiling=True): llmlens's in-process sampler, on-CPU, tags samples with spans
  llmlens-wall  the same in wall-clock mode
  pyroscope  pyroscope-io's native sampler (oncpu=True, gil_only=True, as it ships), with
             pyroscope-otel's span processor on the same tracer provider (tags local-root spans)
  llmlens@REV  llmlens's sampler as of git revision REV (its profiler, stack_sampler, profile_spans
             and profile_export modules, from `git show`), the rest as now: compares two versions
             of the sampler in one run, interleaved

Per row: requests/s; chatbot CPU ms per request (all its threads, /proc/<pid>/stat); the CPU of the
profiler's own threads as a share of the chatbot's (llmlens: its sampling and export threads;
pyroscope: the threads its configure() started), and the same as a share of one core; profile bytes pushed per second; and the change
in CPU per request against `off` in the same repeat (paired, so a slow spell of the shared machine
cancels out), the median over repeats with the range. Rows are rotated between repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROWS = ("off", "llmlens", "llmlens-wall", "pyroscope")
SAMPLER_MODULES = ("profile_spans", "stack_sampler", "profile_export", "profiler")  # in import order
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROFILE_PATHS = ("/ingest", "/push.v1.PusherService/Push")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """Accepts every POST with 200 and counts the bytes of profile pushes: stands in for the server."""

    def __init__(self) -> None:
        sink = self
        self.profile_bytes = 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("content-length") or 0)
                self.rfile.read(n)
                if self.path.split("?")[0] in PROFILE_PATHS:
                    with sink.lock:
                        sink.profile_bytes += n
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self) -> int:
        with self.lock:
            n, self.profile_bytes = self.profile_bytes, 0
        return n


# --- The chatbot process, set up as one row ------------------------------------------------------

def _thread_ids() -> set[int]:
    return {int(t) for t in os.listdir("/proc/self/task")}


def sampler_from_revision(revision: str) -> Path:
    """The sampler's modules as of a git revision, written to a new directory."""
    root = Path(__file__).resolve().parent.parent
    directory = Path(tempfile.mkdtemp(prefix="llmlens-sampler-"))
    for name in SAMPLER_MODULES:
        out = subprocess.run(["git", "show", f"{revision}:src/llmlens/sdk/{name}.py"], cwd=root,
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"llmlens@{revision}: {out.stderr.strip()}")
        (directory / f"{name}.py").write_text(out.stdout)
    return directory


def load_sampler(directory: str) -> None:
    """Make `llmlens.sdk.<module>` the versions in `directory` before init() imports them."""
    import importlib.util

    for name in SAMPLER_MODULES:
        spec = importlib.util.spec_from_file_location(f"llmlens.sdk.{name}", Path(directory) / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)


SAMPLER_COUNTERS = ("ticks", "full_ticks", "walks", "samples", "frames")


def serve_chatbot(row: str, hz: int, sink: str, threads_file: str, chatbot_args: list[str],
                  sampler_dir: str | None = None) -> int:
    """Run the demo chatbot with `row`'s profiler; write the profiler's thread ids to `threads_file`.

    On SIGUSR1 it writes the sampler's counters and the process's thread count to
    `threads_file`.stats (the parent reads them at the start and end of the measured seconds).
    """
    if sampler_dir:
        load_sampler(sampler_dir)
    from llmlens.demo import chatbot, runtime

    def write_stats(signum: int, frame: Any) -> None:
        import llmlens.sdk.runtime as sdk_runtime

        profiler = sdk_runtime.active.profiler if sdk_runtime.active is not None else None
        stats: dict[str, Any] = {"threads": len(os.listdir("/proc/self/task"))}
        if profiler is not None:
            stats.update({name: getattr(profiler.sampler, name, None) for name in SAMPLER_COUNTERS})
        path = Path(threads_file + ".stats")
        path.with_suffix(".tmp").write_text(json.dumps(stats))
        path.with_suffix(".tmp").replace(path)

    signal.signal(signal.SIGUSR1, write_stats)

    start_telemetry = runtime.start_telemetry

    def with_profiler(*args: Any, **kwargs: Any) -> None:
        start_telemetry(*args, **kwargs)
        import llmlens.sdk.runtime as sdk_runtime

        ids: list[int] = []
        profiler = sdk_runtime.active.profiler if sdk_runtime.active is not None else None
        if profiler is not None:
            ids = [profiler._sampling.native_id, profiler._exporting.native_id]
        elif row == "pyroscope":
            import pyroscope
            from opentelemetry import trace
            from pyroscope.otel import PyroscopeSpanProcessor

            before = _thread_ids()
            pyroscope.configure(application_name="demo-chatbot", server_address=sink, sample_rate=hz,
                                oncpu=True, gil_only=True)
            trace.get_tracer_provider().add_span_processor(PyroscopeSpanProcessor())
            time.sleep(0.5)
            ids = sorted(_thread_ids() - before)
        Path(threads_file).write_text(json.dumps(ids))

    runtime.start_telemetry = with_profiler
    return chatbot.main(chatbot_args)


# --- Measuring (parent process) -----------------------------------------------------------------

def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def thread_cpu_s(pid: int, tid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0]) / 1e9
    except FileNotFoundError:
        return 0.0


def thread_sched(pid: int, tid: int) -> tuple[float, float, int, int, int]:
    """A thread's CPU s, run-queue wait s, time slices run, and voluntary and involuntary context switches."""
    try:
        cpu, wait, slices = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
        status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
    except FileNotFoundError:
        return 0.0, 0.0, 0, 0, 0
    switches = {k: int(v) for k, v in (line.split(":") for line in status.splitlines() if "ctxt_switches" in line)}
    return (int(cpu) / 1e9, int(wait) / 1e9, int(slices), switches.get("voluntary_ctxt_switches", 0),
            switches.get("nonvoluntary_ctxt_switches", 0))


def sampler_stats(proc: subprocess.Popen, threads_file: str) -> dict[str, Any]:
    """The chatbot's sampler counters and thread count, written by it on SIGUSR1."""
    path = Path(threads_file + ".stats")
    path.unlink(missing_ok=True)
    proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not path.exists():
        if time.monotonic() > deadline:
            return {}
        time.sleep(0.02)
    stats = json.loads(path.read_text())
    path.unlink()
    return stats


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout:g} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Load:
    """Closed-loop load: `concurrency` threads each posting one chat after another."""

    def __init__(self, url: str, concurrency: int) -> None:
        from llmlens.demo.scenarios import QUESTIONS

        self.url = f"{url}/v1/chat"
        self.questions = QUESTIONS
        self.done = 0
        self.failed = 0
        self.lock = threading.Lock()
        self.running = threading.Event()
        self.running.set()
        self.threads = [threading.Thread(target=self._worker, args=(i,), daemon=True) for i in range(concurrency)]
        for t in self.threads:
            t.start()

    def _worker(self, index: int) -> None:
        import httpx

        with httpx.Client(timeout=30.0) as client:
            n = 0
            while self.running.is_set():
                n += 1
                body = {"session_id": f"bench-{index}-{n}", "user_message": self.questions[(index + n) % len(self.questions)]}
                try:
                    ok = client.post(self.url, json=body).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with self.lock:
                    if ok:
                        self.done += 1
                    else:
                        self.failed += 1

    def count(self) -> tuple[int, int]:
        with self.lock:
            return self.done, self.failed

    def stop(self) -> None:
        self.running.clear()
        for t in self.threads:
            t.join(timeout=35)


def measure_row(row: str, args: argparse.Namespace, sink: Sink, retriever_url: str, llm_url: str,
                sampler_dirs: dict[str, Path]) -> dict[str, float]:
    port = free_port()
    fd, threads_file = tempfile.mkstemp(prefix="profiler-threads-", suffix=".json")
    os.close(fd)
    # The chatbot logs every request: a pipe nobody reads would block it. Closed in the finally below.
    log = tempfile.TemporaryFile()  # noqa: SIM115
    env = {**os.environ, "LLMLENS_PROFILING": "true" if row.startswith("llmlens") else "false",
           "LLMLENS_PROFILING_HZ": str(args.hz), "LLMLENS_PROFILING_MODE": "wall" if row == "llmlens-wall" else "cpu"}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-chatbot", row, "--hz", str(args.hz), "--sink", sink.url,
         "--threads-file", threads_file,
         *(["--sampler-dir", str(sampler_dirs[row])] if row in sampler_dirs else []), "--", "--port", str(port), "--otlp-endpoint", sink.url,
         "--retriever-url", retriever_url, "--llm-base-url", llm_url, "--llm-api-key", "bench", "--skip-llm-check"],
        env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(f"{url}/healthz", proc)
        deadline = time.monotonic() + 10
        while not Path(threads_file).read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        profiler_threads = json.loads(Path(threads_file).read_text() or "[]")
        load = Load(url, args.concurrency)
        time.sleep(args.warmup)
        done0, failed0 = load.count()
        stats0 = sampler_stats(proc, threads_file)
        sched0 = thread_sched(proc.pid, profiler_threads[0]) if profiler_threads else None
        cpu0, wall0 = process_cpu_s(proc.pid), time.monotonic()
        per_thread0 = [thread_cpu_s(proc.pid, t) for t in profiler_threads]
        sink.take()
        time.sleep(args.seconds)
        done1, failed1 = load.count()
        cpu1, wall1 = process_cpu_s(proc.pid), time.monotonic()
        per_thread1 = [thread_cpu_s(proc.pid, t) for t in profiler_threads]
        sched1 = thread_sched(proc.pid, profiler_threads[0]) if profiler_threads else None
        stats1 = sampler_stats(proc, threads_file)
        pushed = sink.take()
        load.stop()
    finally:
        stop(proc)
        os.unlink(threads_file)
        log.seek(0)
        stderr = log.read().decode(errors="replace")
        log.close()
    requests = done1 - done0
    if requests == 0:
        raise SystemExit(f"{row}: no request completed ({failed1 - failed0} failed); chatbot stderr:\n{stderr[-2000:]}")
    cpu = cpu1 - cpu0
    elapsed = wall1 - wall0
    per_thread = [b - a for a, b in zip(per_thread0, per_thread1, strict=True)]
    prof0, prof1 = 0.0, sum(per_thread)
    # The sampling thread, a tick at a time: how many ticks ran, how many read the threads, how many
    # stacks were walked; its CPU, run-queue wait and context switches per tick (from the kernel).
    ticks: dict[str, float] = {"threads": stats1.get("threads", 0)}
    if stats0.get("ticks") is not None and stats1.get("ticks") is not None:
        n = max(1, stats1["ticks"] - stats0["ticks"])
        ticks.update({"ticks_per_s": (stats1["ticks"] - stats0["ticks"]) / elapsed,
                      **{f"{k}_per_tick": (stats1[k] - stats0[k]) / n for k in SAMPLER_COUNTERS[1:]
                         if stats0.get(k) is not None and stats1.get(k) is not None}})
        if sched0 is not None and sched1 is not None:
            d = [b - a for a, b in zip(sched0, sched1, strict=True)]
            ticks.update({"cpu_us_per_tick": 1e6 * d[0] / n, "runq_wait_us_per_tick": 1e6 * d[1] / n,
                          "slices_per_tick": d[2] / n, "voluntary_switches_per_tick": d[3] / n,
                          "involuntary_switches_per_tick": d[4] / n})
    return {"rps": requests / elapsed, "cpu_ms_per_request": 1000 * cpu / requests, "cpu_share": cpu / elapsed,
            "profiler_share": (prof1 - prof0) / cpu if cpu else 0.0, "profiler_core": (prof1 - prof0) / elapsed, "profile_bytes_per_s": pushed / elapsed,
            "failed": failed1 - failed0, "per_thread_core": [t / elapsed for t in per_thread], "ticks": ticks,
            "load": load_average()}


def start_services(sink: Sink) -> tuple[list[subprocess.Popen], str, str]:
    llm_port, retriever_port = free_port(), free_port()
    env = {**os.environ, "LLMLENS_PROFILING": "false"}
    llm = subprocess.Popen([sys.executable, "-m", "llmlens.demo.mock_llm", "--port", str(llm_port), "--ttft-ms", "0",
                            "--ms-per-token", "0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    retriever = subprocess.Popen([sys.executable, "-m", "llmlens.demo.retriever", "--port", str(retriever_port),
                                  "--otlp-endpoint", sink.url], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
    llm_url, retriever_url = f"http://127.0.0.1:{llm_port}", f"http://127.0.0.1:{retriever_port}"
    wait_ready(f"{llm_url}/v1/models", llm)
    wait_ready(f"{retriever_url}/healthz", retriever)
    return [llm, retriever], retriever_url, f"{llm_url}/v1"


def report(rows: list[str], results: dict[str, list[dict[str, float]]]) -> None:
    print(f"\n{'row':<16} {'req/s':>7} {'CPU ms/req':>10} {'chatbot CPU':>11} {'profiler thr':>12} "
          f"{'(of a core)':>11} {'profile B/s':>11}   CPU/req vs off (median [min, max] over repeats)")
    for row in rows:
        runs = results[row]

        def med(key: str, runs: list[dict[str, float]] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        change = ""
        if row != "off" and "off" in results:
            diffs = [r["cpu_ms_per_request"] / off["cpu_ms_per_request"] - 1 for r, off in zip(runs, results["off"],
                                                                                                  strict=True)]
            change = f"{statistics.median(diffs):+.1%} [{min(diffs):+.1%}, {max(diffs):+.1%}]"
        print(f"{row:<16} {med('rps'):7.1f} {med('cpu_ms_per_request'):10.2f} {med('cpu_share'):10.0%}  "
              f"{med('profiler_share'):11.2%}  {med('profiler_core'):10.2%}  {med('profile_bytes_per_s'):11.0f}   {change}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="off,llmlens,pyroscope",
                        help=f"comma-separated, from {', '.join(ROWS)}, llmlens@<git revision>")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per row and repeat")
    parser.add_argument("--warmup", type=float, default=4.0, help="seconds of load before measuring")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--hz", type=int, default=100)
    parser.add_argument("--serve-chatbot", metavar="ROW", help=argparse.SUPPRESS)
    parser.add_argument("--sink", help=argparse.SUPPRESS)
    parser.add_argument("--threads-file", help=argparse.SUPPRESS)
    parser.add_argument("--sampler-dir", help=argparse.SUPPRESS)
    parser.add_argument("chatbot_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_chatbot:
        return serve_chatbot(args.serve_chatbot, args.hz, args.sink, args.threads_file, args.chatbot_args,
                             args.sampler_dir)

    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = {r for r in rows if r not in ROWS and not r.startswith("llmlens@")}
    if unknown:
        parser.error(f"unknown rows: {', '.join(sorted(unknown))}")
    if "pyroscope" in rows:
        try:
            import pyroscope  # noqa: F401
            import pyroscope.otel  # noqa: F401
        except ImportError:
            print("pyroscope: pyroscope-io / pyroscope-otel not installed; row skipped")
            rows.remove("pyroscope")
    sampler_dirs = {row: sampler_from_revision(row.split("@", 1)[1]) for row in rows if row.startswith("llmlens@")}
    sink = Sink()
    services, retriever_url, llm_url = start_services(sink)
    results: dict[str, list[dict[str, float]]] = {row: [] for row in rows}
    try:
        for repeat in range(args.repeats):
            order = rows[repeat % len(rows):] + rows[:repeat % len(rows)]
            for row in order:
                r = measure_row(row, args, sink, retriever_url, llm_url, sampler_dirs)
                results[row].append(r)
                print(f"repeat {repeat + 1} {row:<16} {r['rps']:6.1f} req/s  {r['cpu_ms_per_request']:6.2f} CPU ms/req  "
                      f"profiler threads {r['profiler_share']:.2%} of it, each "
                      f"{' '.join(f'{t:.2%}' for t in r['per_thread_core'])} of a core  failed {r['failed']:.0f}  "
                      f"load {r['load']}", flush=True)
                if "ticks_per_s" in r["ticks"]:
                    print("         sampler: " + "  ".join(f"{k} {v:.3g}" for k, v in r["ticks"].items()), flush=True)
    finally:
        for proc in services:
            stop(proc)
        for directory in sampler_dirs.values():
            shutil.rmtree(directory, ignore_errors=True)
    print(f"\n{args.concurrency} concurrent clients, {args.seconds:g} s measured per run, {args.repeats} repeats, "
          f"{args.hz} Hz, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    report(rows, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
