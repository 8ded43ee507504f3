"""Start time and memory of a real `llmlens serve` process tree.

Starts the server N times on an empty data folder and N times on an existing store (the one
the burst below filled), and prints the time from process start to the first 200 of /readyz
(median, min, max). Then prints the memory of every process of the server's tree: the server,
its ingest workers (spawned, not forked: a worker shares only the pages of the libraries'
files with the server, no heap) and multiprocessing's resource tracker, each as

  RSS  resident pages, shared ones counted in full in every process that maps them
  PSS  shared pages divided among the processes mapping them (sums to what the tree costs)
  USS  pages only this process maps (what stopping it would free)

(from /proc/<pid>/smaps_rollup), and the tree's totals, at three moments: idle after start
on an empty folder, idle after a burst of ingest (senders posting 512-span LLM traces) and
queries (trace list, one trace, stats, search, UI pages, /metrics), again once the server's
idle ingest workers have exited (--workers-idle-s, given to the server), and idle after start on
the existing store. Also the time of the first export after ready (the ingest workers may
start on demand) and the server's peak RSS (VmHWM) over the burst.

    python benchmarks/server_footprint.py [--runs 5] [--burst-seconds 10] [--senders 4]
        [--workers-idle-s 10] [--server-src DIR] [--starts-only]

Every start imports compiled modules (a bytecode cache in the temporary folder, written by an
untimed first start), as an installed package would, whatever PYTHONDONTWRITEBYTECODE says.

`--server-src` runs the server from another checkout's src/ folder (PYTHONPATH), to compare
two versions interleaved on the same machine: the figures move with the machine's load, so
compare only runs made beside each other, and read the load average printed with them.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.ingest import build_request  # noqa: E402

SPANS_A_BODY = 512
PYCACHE = Path(tempfile.gettempdir()) / "llmlens-footprint-pycache"  # kept between runs


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m llmlens.cli serve` on free loopback ports, timed from the moment it is started."""

    def __init__(self, data_dir: Path, server_src: Path | None, log: Path, workers_idle_s: float) -> None:
        self.http_port, self.grpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        # Through the environment, which a version without the setting ignores.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "LLMLENS_INGEST_WORKERS_IDLE_S": f"{workers_idle_s:g}"}
        # Compiled modules cached, as an installed package has them: without, every start compiles
        # llmlens's sources again (~0.4 s), e.g. where PYTHONDONTWRITEBYTECODE is set.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
        if server_src:
            env["PYTHONPATH"] = str(server_src)
        self._log = open(log, "ab")  # noqa: SIM115 -- kept open for the process's life
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmlens.cli", "serve", "--data-dir", str(data_dir),
             "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port), "--log-level", "warning"],
            stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout: float = 120.0) -> tuple[float, float]:
        """Seconds from start to the first 200 of /readyz (polled every 10 ms), and the CPU seconds the
        server's tree used until then (steadier than the wall time on a busy machine)."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {self.proc.returncode}")
                try:
                    if client.get(self.url + "/readyz").status_code == 200:
                        return time.perf_counter() - self.started, tree_cpu_seconds(self.proc.pid)
                except httpx.HTTPError:
                    pass
                time.sleep(0.01)
        raise RuntimeError(f"the server was not ready after {timeout} s")

    @classmethod
    def start_ready(cls, data_dir: Path, server_src: Path | None, log: Path,
                    workers_idle_s: float) -> tuple[Server, tuple[float, float]]:
        """A ready server and its wait_ready() figures; started again on other ports when another
        process took a free port between our look and the server's bind (a busy machine)."""
        for attempt in range(3):
            server = cls(data_dir, server_src, log, workers_idle_s)
            try:
                return server, server.wait_ready()
            except RuntimeError:
                server.stop()
                taken = "in use" in log.read_text(errors="replace")[-2000:]
                if not taken or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        self._log.close()


# --- memory of a process tree ------------------------------------------------------------------

@dataclass
class ProcessMemory:
    pid: int
    role: str
    rss_kb: int
    pss_kb: int
    uss_kb: int
    hwm_kb: int  # peak RSS


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == str(pid):
            found.append(int(stat.parent.name))
    return found


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo.extend(_children(current))
    return pids


def _role(pid: int, root: int) -> str:
    if pid == root:
        return "server"
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"
    if "resource_tracker" in cmdline:
        return "resource tracker"
    if "multiprocessing" in cmdline or "spawn_main" in cmdline:
        return "ingest worker"
    return cmdline[:40]


def tree_cpu_seconds(root: int) -> float:
    """User and system CPU seconds of the live processes of `root`'s tree."""
    total = 0
    for pid in _tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _kb(text: str, key: str) -> int:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def tree_memory(root: int) -> list[ProcessMemory]:
    rows = []
    for pid in _tree(root):
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue  # exited meanwhile
        uss = _kb(rollup, "Private_Clean") + _kb(rollup, "Private_Dirty")
        rows.append(ProcessMemory(pid, _role(pid, root), _kb(rollup, "Rss"), _kb(rollup, "Pss"), uss,
                                  _kb(status, "VmHWM")))
    return rows


def print_memory(title: str, rows: list[ProcessMemory]) -> None:
    mb = 1024
    print(f"\n{title}")
    print(f"  {'process':<18} {'pid':>7} {'RSS MB':>8} {'PSS MB':>8} {'USS MB':>8} {'peak RSS MB':>12}")
    for r in rows:
        print(f"  {r.role:<18} {r.pid:>7} {r.rss_kb / mb:>8.0f} {r.pss_kb / mb:>8.0f} {r.uss_kb / mb:>8.0f} "
              f"{r.hwm_kb / mb:>12.0f}")
    print(f"  {'tree (' + str(len(rows)) + ' processes)':<26} {sum(r.rss_kb for r in rows) / mb:>8.0f} "
          f"{sum(r.pss_kb for r in rows) / mb:>8.0f} {sum(r.uss_kb for r in rows) / mb:>8.0f}")


# --- a burst of ingest and queries -----------------------------------------------------------------

class FreshBodies:
    """512-span export bodies with fresh trace ids: a template is built once, then each body copies
    it and overwrites its trace ids in place, so deduplication drops nothing."""

    def __init__(self) -> None:
        self.body = build_request(SPANS_A_BODY // 4, time.time_ns())
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        request = ExportTraceServiceRequest.FromString(self.body)
        ids = list(dict.fromkeys(span.trace_id for rs in request.resource_spans
                                 for scope in rs.scope_spans for span in scope.spans))
        self.offsets = [(at, n) for n, trace_id in enumerate(ids) for at in _find_all(self.body, trace_id)]
        self.count = len(ids)

    def next(self) -> bytes:
        fresh = [random.randbytes(16) for _ in range(self.count)]
        out = bytearray(self.body)
        for at, n in self.offsets:
            out[at:at + 16] = fresh[n]
        return bytes(out)


def _find_all(body: bytes, needle: bytes) -> list[int]:
    found, at = [], body.find(needle)
    while at >= 0:
        found.append(at)
        at = body.find(needle, at + 1)
    return found


QUERIES = [("/api/v1/traces", {"start": "-24h", "limit": 50}),
           ("/api/v1/llm/stats", {"start": "-24h", "step": "5m", "group_by": "model"}),
           ("/api/v1/search", {"q": '{ span.gen_ai.request.model = "gpt-4o-mini" }', "start": "-24h", "limit": 50}),
           ("/api/v1/sessions", {"start": "-24h", "limit": 100}),
           ("/api/v1/service-graph", {"start": "-24h"}),
           ("/api/v1/status", {}), ("/metrics", {}), ("/", {}), ("/traces", {}), ("/openapi.json", {})]


def burst(url: str, seconds: float, senders: int, bodies: FreshBodies) -> tuple[int, int, dict[int, int]]:
    """Ingest from `senders` threads and query from one more for `seconds`: (spans acknowledged,
    queries answered, {export status: count})."""
    stop = time.monotonic() + seconds
    acked, statuses, lock = [0], {}, threading.Lock()
    queried = [0]

    def send() -> None:
        with httpx.Client(base_url=url, timeout=60.0) as client:
            while time.monotonic() < stop:
                with lock:
                    body = bodies.next()
                r = client.post("/v1/traces", content=body, headers={"content-type": "application/x-protobuf"})
                with lock:
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    acked[0] += SPANS_A_BODY if r.status_code == 200 else 0
                if r.status_code in (429, 503):
                    time.sleep(float(r.headers.get("retry-after", "1")))

    def query() -> None:
        with httpx.Client(base_url=url, timeout=60.0) as client:
            while time.monotonic() < stop:
                for path, params in QUERIES:
                    client.get(path, params=params).raise_for_status()
                    queried[0] += 1
                page = client.get("/api/v1/traces", params={"start": "-24h", "limit": 5}).json()
                for item in page["items"][:2]:
                    client.get(f"/api/v1/traces/{item['trace_id']}").raise_for_status()
                    queried[0] += 1

    threads = [threading.Thread(target=send) for _ in range(senders)] + [threading.Thread(target=query)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return acked[0], queried[0], statuses


def first_export_ms(url: str, body: bytes) -> float:
    started = time.perf_counter()
    r = httpx.post(url + "/v1/traces", content=body, headers={"content-type": "application/x-protobuf"}, timeout=120)
    r.raise_for_status()
    return (time.perf_counter() - started) * 1000


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def summary(starts: list[tuple[float, float]]) -> str:
    wall, cpu = [w for w, _ in starts], [c for _, c in starts]
    return (f"median {statistics.median(wall):.2f} s (min {min(wall):.2f}, max {max(wall):.2f}, {len(wall)} runs); "
            f"CPU median {statistics.median(cpu):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="starts timed on each kind of folder")
    parser.add_argument("--burst-seconds", type=float, default=10.0)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--settle-seconds", type=float, default=3.0, help="idle time before memory is read")
    parser.add_argument("--workers-idle-s", type=float, default=10.0,
                        help="the server's --ingest-workers-idle-s (default there: 60)")
    parser.add_argument("--server-src", type=Path, help="run the server from this src/ folder (PYTHONPATH)")
    parser.add_argument("--starts-only", action="store_true", help="time the starts only (no memory, no burst)")
    args = parser.parse_args()
    src = args.server_src.resolve() if args.server_src else None

    tmp = Path(tempfile.mkdtemp(prefix="llmlens-footprint-"))
    log = tmp / "server.log"
    print(f"server from {src or 'the installed llmlens'}; load average {load()}", flush=True)
    bodies = FreshBodies()
    try:
        warm, _ = Server.start_ready(tmp / "warm-up", src, log, args.workers_idle_s)  # writes the bytecode cache
        warm.stop()
        empty_starts = []
        for n in range(args.runs):
            server, start = Server.start_ready(tmp / f"empty-{n}", src, log, args.workers_idle_s)
            empty_starts.append(start)
            try:
                if n == 0 and not args.starts_only:
                    time.sleep(args.settle_seconds)
                    print_memory(f"idle after start, empty store (load {load()})", tree_memory(server.proc.pid))
                    print(f"\nfirst export after ready (512 spans): {first_export_ms(server.url, bodies.next()):.0f} ms",
                          flush=True)
                    spans, queries, statuses = burst(server.url, args.burst_seconds, args.senders, bodies)
                    print(f"burst: {args.senders} senders and a querier for {args.burst_seconds:g} s: {spans:,} spans "
                          f"acknowledged ({spans / args.burst_seconds:,.0f}/s), {queries} queries, statuses {statuses}")
                    time.sleep(args.settle_seconds)
                    print_memory(f"idle after the burst (load {load()}); peak RSS is over the server's life",
                                 tree_memory(server.proc.pid))
                    time.sleep(args.workers_idle_s + 6)  # the server looks for idle workers every few seconds
                    print_memory(f"{args.workers_idle_s + 6 + args.settle_seconds:g} s after the burst, past "
                                 f"--ingest-workers-idle-s {args.workers_idle_s:g} (load {load()})",
                                 tree_memory(server.proc.pid))
            finally:
                server.stop()
        existing_starts = []
        for _ in range(args.runs):
            server, start = Server.start_ready(tmp / "empty-0", src, log, args.workers_idle_s)
            existing_starts.append(start)
            try:
                if len(existing_starts) == 1 and not args.starts_only:
                    time.sleep(args.settle_seconds)
                    print_memory(f"idle after start, existing store (load {load()})", tree_memory(server.proc.pid))
            finally:
                server.stop()
        print(f"\nstart to ready, empty store:    {summary(empty_starts)}")
        print(f"start to ready, existing store: {summary(existing_starts)}")
        print(f"load average {load()}")
    except RuntimeError as exc:
        print(f"{exc}\n--- server log ---\n{log.read_text(errors='replace')[-4000:]}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
