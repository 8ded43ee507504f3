"""Instructions a profiler tick costs, counted by callgrind: a figure the load of a shared machine does not move.

    python benchmarks/profiler_ticks.py [--ticks 400] [--depth 47] [--threads 8] [--rows c,python,@REV]

One process ticks llmlens's stack sampler (on-CPU mode, 100 Hz) from its main thread, as the
profiler's sampling thread would, over `--threads` parked threads, one of them `--depth` frames
deep (the demo chatbot under load has nine threads and ~47-frame stacks). The threads' CPU clocks
are scripted, so every run takes the same path:

  busy   the process busy, the deep thread due one sample every other tick (the loaded chatbot)
  walk   the deep thread due a sample every tick: one stack walk a tick
  full   the process busy, no thread due a sample: the threads' clocks are read, nothing walked
  idle   the process idle: each tick stops at the process's CPU clock

Each case runs under `valgrind --tool=callgrind` twice, with `--ticks` and twice as many; the
difference over `--ticks` is the instructions a tick, start-up and set-up cancelled out. A walk's
cost is walk minus full. Rows: `c` (the C stack walk), `python` (LLMLENS_STACK_WALKER=python: the
Python walk), `@REV` (the sampler's modules as of git revision REV, as profiling_overhead.py's
`llmlens@REV` rows load them). Frames are already materialised after the first tick (the parked
threads do not move), which is the cheap case for both walks: a running thread's new frames cost
the same frame-object creation in either.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

CASES = ("busy", "walk", "full", "idle")
PERIOD_NS = 10_000_000


def park(depth: int, ready: threading.Event, stop: threading.Event) -> None:
    if depth > 0:
        park(depth - 1, ready, stop)
        return
    ready.set()
    stop.wait()


def run_ticks(case: str, ticks: int, depth: int, threads: int) -> None:
    """The measured process: park the threads, script the clocks, tick."""
    from llmlens.sdk import stack_sampler

    stop = threading.Event()
    parked = []
    for i in range(threads):
        ready = threading.Event()
        # The deep thread: park()'s frames, threading's three below them, Event.wait's two above.
        frames = depth - 6 if i == 0 else 0
        thread = threading.Thread(target=park, args=(frames, ready, stop), name=f"parked-{i}", daemon=True)
        thread.start()
        ready.wait()
        parked.append(thread)
    deep_clock = stack_sampler.thread_cpu_clock(parked[0].native_id)
    process = time.CLOCK_PROCESS_CPUTIME_ID
    state = {"tick": 0}
    process_step = 0 if case == "idle" else PERIOD_NS
    deep_step = {"busy": PERIOD_NS // 2, "walk": PERIOD_NS}.get(case, 0)

    def clock_gettime_ns(clock: int) -> int:
        if clock == process:
            return state["tick"] * process_step
        if clock == deep_clock:
            return state["tick"] * deep_step
        return 0

    stack_sampler.time = SimpleNamespace(clock_gettime_ns=clock_gettime_ns, CLOCK_PROCESS_CPUTIME_ID=process,
                                         monotonic_ns=time.monotonic_ns, time_ns=time.time_ns)
    sampler = stack_sampler.StackSampler(100, "cpu", lambda ident: None)
    sampler.own_idents.add(threading.get_ident())
    for _ in range(4):  # warm up: threads seen, frames materialised
        state["tick"] += 1
        sampler.sample()
    for _ in range(ticks):
        state["tick"] += 1
        sampler.sample()
    if case in ("busy", "walk") and not sampler.drain().counts:
        raise SystemExit(f"{case}: no sample was taken")
    stop.set()


def instructions(row: str, case: str, ticks: int, args: argparse.Namespace, sampler_dir: Path | None) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if row == "python":
        env["LLMLENS_STACK_WALKER"] = "python"
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
               "--run", case, "--ticks", str(ticks), "--depth", str(args.depth), "--threads", str(args.threads)]
    if sampler_dir is not None:
        command += ["--sampler-dir", str(sampler_dir)]
    out = subprocess.run(command, env=env, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode != 0 or found is None:
        raise SystemExit(f"{row} {case}: valgrind failed:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=400)
    parser.add_argument("--depth", type=int, default=47, help="frames on the deep thread's stack")
    parser.add_argument("--threads", type=int, default=8, help="parked threads besides the ticking one")
    parser.add_argument("--rows", default="c,python", help="comma-separated: c, python, @<git revision>")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--run", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--sampler-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        if args.sampler_dir:
            from profiling_overhead import load_sampler

            load_sampler(args.sampler_dir)
        run_ticks(args.run, args.ticks, args.depth, args.threads)
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    from profiling_overhead import sampler_from_revision

    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    dirs = {row: sampler_from_revision(row[1:]) for row in rows if row.startswith("@")}
    print(f"instructions a tick (callgrind), {args.threads} parked threads, the deep one {args.depth} frames, "
          f"{args.ticks} ticks, Python {sys.version.split()[0]}")
    print(f"{'row':<16}" + "".join(f"{case:>10}" for case in cases) + f"{'a walk':>10}")
    try:
        for row in rows:
            per_tick = {}
            for case in cases:
                low = instructions(row, case, args.ticks, args, dirs.get(row))
                high = instructions(row, case, 2 * args.ticks, args, dirs.get(row))
                per_tick[case] = (high - low) / args.ticks
            walk = per_tick["walk"] - per_tick["full"] if {"walk", "full"} <= per_tick.keys() else None
            print(f"{row:<16}" + "".join(f"{per_tick[c]:10,.0f}" for c in cases)
                  + (f"{walk:10,.0f}" if walk is not None else ""), flush=True)
    finally:
        for directory in dirs.values():
            shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
