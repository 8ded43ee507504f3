"""An app the profiling tests run as a real process: it burns CPU in known functions inside spans.

    python -m tests.sdk.profiled_app ENDPOINT SCENARIO [--mode cpu|wall] [--seconds S]

Scenarios:
  threads  the main thread burns CPU in `burn_in_span` inside the span "burn"; a thread named
           "idle-waiter" waits on an event and one named "sleeper" sleeps, the whole time
  asyncio  two tasks on one event loop take turns burning CPU, `burn_task_a` inside span "task-a"
           and `burn_task_b` inside span "task-b"; then a task started inside span "parent"
           burns CPU in `burn_in_child` without a span of its own
  fork     the process forks (as a pre-fork server does); the child burns CPU in
           `burn_in_forked_child` inside span "forked-burn" while the parent burns in
           `burn_in_parent` inside span "parent-burn"; the child shuts llmlens down and exits
It prints one JSON line: the span ids, the answer the work computed, and whether any llmlens
thread is still alive after llmlens.shutdown().
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import threading
import time

from opentelemetry import trace

import llmlens


def work(seconds: float) -> int:
    """Pure-Python CPU: the result proves the work ran to the end whatever the profiler did."""
    deadline = time.perf_counter() + seconds
    rounds = 0
    digest = b"seed"
    while time.perf_counter() < deadline:
        for _ in range(200):
            digest = hashlib.sha256(digest).digest()
        rounds += 1
    return rounds


def burn_in_span(seconds: float) -> int:
    return work(seconds)


def span_ids(span: trace.Span) -> dict[str, str]:
    ctx = span.get_span_context()
    return {"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}"}


def threads_scenario(seconds: float) -> dict[str, object]:
    stop = threading.Event()

    def sleeper() -> None:
        while not stop.is_set():
            time.sleep(0.005)

    waiter = threading.Thread(target=stop.wait, name="idle-waiter")
    sleeping = threading.Thread(target=sleeper, name="sleeper")
    waiter.start()
    sleeping.start()
    tracer = trace.get_tracer("profiled-app")
    with tracer.start_as_current_span("burn") as span:
        rounds = burn_in_span(seconds)
    stop.set()
    waiter.join()
    sleeping.join()
    return {"burn": span_ids(span), "rounds": rounds}


def burn_task_a(seconds: float) -> int:
    return work(seconds)


def burn_task_b(seconds: float) -> int:
    return work(seconds)


async def asyncio_scenario(seconds: float) -> dict[str, object]:
    tracer = trace.get_tracer("profiled-app")
    ids: dict[str, object] = {}

    async def task(name: str, burn) -> int:
        with tracer.start_as_current_span(name) as span:
            ids[name] = span_ids(span)
            rounds = 0
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                rounds += burn(0.02)  # hold the loop ~20 ms, then let the other task run
                await asyncio.sleep(0)
            return rounds

    a, b = await asyncio.gather(task("task-a", burn_task_a), task("task-b", burn_task_b))
    ids["rounds"] = a + b
    with tracer.start_as_current_span("parent") as span:  # a child task that starts no span of its own
        ids["parent"] = span_ids(span)
        await asyncio.create_task(child_without_span(seconds / 2))
    return ids


async def child_without_span(seconds: float) -> int:
    await asyncio.sleep(0)
    return burn_in_child(seconds)


def burn_in_child(seconds: float) -> int:
    return work(seconds)


def burn_in_forked_child(seconds: float) -> int:
    return work(seconds)


def burn_in_parent(seconds: float) -> int:
    return work(seconds)


def fork_scenario(seconds: float) -> dict[str, object]:
    tracer = trace.get_tracer("profiled-app")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into the parent's code
        status = 1
        try:
            os.close(read_fd)
            with tracer.start_as_current_span("forked-burn") as span:
                burn_in_forked_child(seconds)
            threads = sorted(t.name for t in threading.enumerate() if t.name.startswith("llmlens"))
            llmlens.shutdown()
            os.write(write_fd, json.dumps({"child": span_ids(span), "child_pid": os.getpid(),
                                           "child_llmlens_threads": threads}).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    with tracer.start_as_current_span("parent-burn") as span:
        burn_in_parent(seconds)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_fd) as pipe:
        child = json.loads(pipe.read() or "{}")
    return {"parent": span_ids(span), "parent_pid": os.getpid(), "child_exit_status": status, **child}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("endpoint")
    parser.add_argument("scenario", choices=["threads", "asyncio", "fork"])
    parser.add_argument("--mode", default="cpu")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    llmlens.init(service_name="profiled-app", endpoint=args.endpoint, profiling=True, profiling_mode=args.mode,
                 profiling_export_interval_ms=500, export_traces=False, export_metrics=False,
                 instrument_http=False)
    if args.scenario == "threads":
        result = threads_scenario(args.seconds)
    elif args.scenario == "fork":
        result = fork_scenario(args.seconds)
    else:
        result = asyncio.run(asyncio_scenario(args.seconds))
    llmlens.shutdown()
    result["llmlens_threads_after_shutdown"] = [t.name for t in threading.enumerate() if t.name.startswith("llmlens")]
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
