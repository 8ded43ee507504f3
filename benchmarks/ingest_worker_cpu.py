"""CPU per span of each step an ingest worker runs, in one process, on benchmarks/ingest.py's bodies.

A worker turns one OTLP/protobuf body into Arrow tables in these steps, timed one at a time over
the same bodies (built once, from a fixed seed, for both shapes):

    decode      the C reader: body -> resources, scopes and spans (decode/spans.py)
    normalise   spans -> rows of otel_traces, llm_calls, llm_scores (normalise/traces.py)
    arrow       rows -> Arrow tables (Batch.freeze without derivations; store/columns.py)
    derive      the derivations: trace_index rows (store/trace_index.py)
    transport   what a worker hands back: Arrow IPC bytes, pickled and unpickled, tables rebuilt

Timed figures move with the machine's load (printed beside them). `--instructions` runs the same
steps under valgrind's callgrind and prints instructions a span for each step, which do not: the
script marks each step's end with a call callgrind dumps its counters before (os.getpgid), so
each step's count is its own, imports and body building excluded.

    python benchmarks/ingest_worker_cpu.py [--shape current|heavy|both] [--bodies 4] [--repeat 3]
    python benchmarks/ingest_worker_cpu.py --instructions [--shape heavy] [--bodies 1]

Run against another tree's code with PYTHONPATH=<tree>/src (this file needs only the steps'
public functions).
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest as ingest_bench  # noqa: E402 -- benchmarks/ingest.py: the same bodies

STEPS = ("decode", "normalise", "arrow", "derive", "transport")
_MARK = "getpgid"  # the libc function callgrind dumps before: called once at each step's end


def bodies_for(shape: str, count: int, spans_per_request: int) -> list[bytes]:
    random.seed(19)  # the same bodies every run, so old and new code read the same bytes
    now = time.time_ns()
    return [ingest_bench.SHAPES[shape](spans_per_request // 4, now) for _ in range(count)]


def run_steps(bodies: list[bytes], repeat: int, mark) -> tuple[dict[str, float], int]:
    """CPU seconds of each step over `repeat` passes on `bodies`, and the spans read."""
    from llmlens.server.decode import spans as span_decoder
    from llmlens.server.normalise import build_cost_model, normalise_spans
    from llmlens.server.receive.workers import BuiltBatch
    from llmlens.server.store.batch import DEFAULT_DERIVATIONS

    cost = build_cost_model()
    seconds = dict.fromkeys(STEPS, 0.0)
    spans = 0
    mark()  # everything before here (imports, warm-up) is no step's
    for _ in range(repeat):
        for body in bodies:
            t0 = time.process_time()
            resources = span_decoder.decode(body)
            mark()
            t1 = time.process_time()
            batch = normalise_spans(resources, cost)
            mark()
            t2 = time.process_time()
            batch.freeze(())
            mark()
            t3 = time.process_time()
            batch.derive(DEFAULT_DERIVATIONS)
            mark()
            t4 = time.process_time()
            built = pickle.loads(pickle.dumps(BuiltBatch.of(batch), pickle.HIGHEST_PROTOCOL)).batch()
            mark()
            t5 = time.process_time()
            assert built.accepted == batch.accepted
            spans += batch.accepted
            for step, took in zip(STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                seconds[step] += took
    return seconds, spans


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def timed(shape: str, args: argparse.Namespace) -> None:
    bodies = bodies_for(shape, args.bodies, args.spans_per_request)
    run_steps(bodies[:1], 1, lambda: None)  # warm-up: first conversions, caches
    load = _load()
    seconds, spans = run_steps(bodies, args.repeat, lambda: None)
    total = sum(seconds.values())
    size = sum(map(len, bodies)) / len(bodies) / args.spans_per_request
    print(f"shape {shape}: {spans:,} spans ({size:,.0f} B a span), load {load} -> {_load()}")
    for step in STEPS:
        print(f"  {step:<10} {seconds[step] / spans * 1e6:7.2f} us a span")
    print(f"  {'total':<10} {total / spans * 1e6:7.2f} us a span  ({spans / total:,.0f} spans/s on one core)")


def counted(shape: str, args: argparse.Namespace) -> None:
    """This script again under callgrind, in --child mode; each dump file is one step's count."""
    with tempfile.TemporaryDirectory(prefix="llmlens-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", f"--dump-before={_MARK}",
                   "--dump-instr=no", sys.executable, __file__, "--child", "--shape", shape,
                   "--bodies", str(args.bodies), "--repeat", str(args.repeat),
                   "--spans-per-request", str(args.spans_per_request)]
        child = subprocess.run(command, capture_output=True, text=True, check=False)
        if child.returncode != 0:
            sys.exit(f"callgrind run failed:\n{child.stderr[-3000:]}")
        spans = int(re.search(r"spans (\d+)", child.stdout).group(1))
        dumps = sorted(Path(tmp).glob("callgrind.out.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
        counts = [_instructions(p) for p in dumps]
    # dump 1: up to the first mark (imports, bodies); then one dump a step, in order, every pass
    steps = counts[1:1 + len(STEPS) * args.bodies * args.repeat]
    if len(steps) != len(STEPS) * args.bodies * args.repeat:
        sys.exit(f"expected {len(STEPS) * args.bodies * args.repeat} step dumps, got {len(steps)}")
    per_step = {step: sum(steps[i::len(STEPS)]) for i, step in enumerate(STEPS)}
    print(f"shape {shape}: {spans:,} spans under callgrind, instructions a span")
    for step in STEPS:
        print(f"  {step:<10} {per_step[step] / spans:10,.0f}")
    print(f"  {'total':<10} {sum(per_step.values()) / spans:10,.0f}")


def _instructions(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=[*ingest_bench.SHAPES, "both"], default="both")
    parser.add_argument("--bodies", type=int, default=None, help="distinct bodies (default 4 timed, 1 counted)")
    parser.add_argument("--repeat", type=int, default=None, help="passes over the bodies (default 3 timed, 1 counted)")
    parser.add_argument("--spans-per-request", type=int, default=512)
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # the run callgrind watches
    args = parser.parse_args()
    quick = args.instructions or args.child
    args.bodies = args.bodies or (1 if quick else 4)
    args.repeat = args.repeat or (1 if quick else 3)
    shapes = list(ingest_bench.SHAPES) if args.shape == "both" else [args.shape]
    if args.child:
        bodies = bodies_for(shapes[0], args.bodies, args.spans_per_request)
        run_steps(bodies[:1], 1, lambda: None)  # the same warm-up as the timed run
        _, spans = run_steps(bodies, args.repeat, lambda: os.getpgid(0))
        print(f"spans {spans}")
        return
    from llmlens.server.decode import spans as span_decoder

    print(f"code from {Path(span_decoder.__file__).parents[3]}, C decoder {'on' if span_decoder.FAST_PATH else 'off'}")
    for shape in shapes:
        (counted if args.instructions else timed)(shape, args)


if __name__ == "__main__":
    main()
