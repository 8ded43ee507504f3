"""The traffic generator: starts scenarios against the chatbot at a rate, shows progress, sums up.

Run alone with ``llmlens demo traffic`` or ``python -m llmlens.demo.traffic``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmlens.demo.apps import pick_app
from llmlens.demo.arguments import TRAFFIC_HELP, add_traffic_arguments
from llmlens.demo.runtime import start_telemetry, stop_telemetry
from llmlens.demo.scenarios import SCENARIOS, RequestResult, ScenarioContext
from llmlens.demo.settings import DEFAULT_SCENARIO_WEIGHTS

SERVICE_NAME = "demo-traffic"
STOP_GRACE_S = 5.0  # how long in-flight scenarios may finish after the run ends
REQUEST_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class TrafficSettings:
    chatbot_url: str
    rate: float  # scenario starts per second
    concurrency: int  # scenarios running at once, at most
    duration: float | None  # seconds; None runs until stopped
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SCENARIO_WEIGHTS))
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate must be positive, got {self.rate}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.duration is not None and not self.duration > 0:
            raise ValueError(f"duration must be positive, got {self.duration}")


@dataclass
class TrafficReport:
    results: list[RequestResult] = field(default_factory=list)
    scenarios_started: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    def record(self, result: RequestResult) -> None:
        self.results.append(result)

    @property
    def errors(self) -> int:
        return sum(not r.ok for r in self.results)


async def run_traffic(
    settings: TrafficSettings,
    stop: asyncio.Event,
    report: TrafficReport,
    served_models: frozenset[str] = frozenset(),
) -> None:
    """Start scenarios at the configured rate until the duration ends or ``stop`` is set.

    Each scenario is played by a user of one of the demo's apps; a request asks for the app's
    model when the chatbot serves it (``served_models``), else for the chatbot's default.
    """
    rng = random.Random(settings.seed)
    names, weights = list(settings.weights), list(settings.weights.values())
    slots = asyncio.Semaphore(settings.concurrency)
    running: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    deadline = start + settings.duration if settings.duration else None
    async with httpx.AsyncClient(base_url=settings.chatbot_url, timeout=REQUEST_TIMEOUT_S) as client:
        next_start = start
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            if await _wait(stop, next_start - time.monotonic(), deadline):
                break
            await slots.acquire()
            name = rng.choices(names, weights)[0]
            app = pick_app(rng)
            ctx = ScenarioContext(
                client, random.Random(rng.random()), report.record, name, app, app.user_id(rng), served_models
            )
            task = asyncio.create_task(_run_scenario(ctx, slots))
            running.add(task)
            task.add_done_callback(running.discard)
            report.scenarios_started[name] += 1
            next_start += 1.0 / settings.rate
        if running:
            _done, pending = await asyncio.wait(running, timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
    report.elapsed_s = time.monotonic() - start


async def _wait(stop: asyncio.Event, delay: float, deadline: float | None) -> bool:
    """Sleep ``delay`` (cut short at the deadline); True when ``stop`` was set meanwhile."""
    if deadline is not None:
        delay = min(delay, deadline - time.monotonic())
    if delay <= 0:
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), timeout=delay)
    except TimeoutError:
        return False
    return True


async def _run_scenario(ctx: ScenarioContext, slots: asyncio.Semaphore) -> None:
    try:
        await SCENARIOS[ctx.scenario](ctx)
    finally:
        slots.release()


async def _show_progress(
    settings: TrafficSettings, report: TrafficReport, console: Console, done: asyncio.Event
) -> None:
    columns = [
        SpinnerColumn(),
        TextColumn("[bold]traffic"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    ]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("", total=settings.duration)
        start = time.monotonic()
        while not done.is_set():
            elapsed = time.monotonic() - start
            rps = len(report.results) / elapsed if elapsed > 0 else 0.0
            description = f"{len(report.results)} requests, {report.errors} errors, {rps:.1f} req/s"
            progress.update(
                task, completed=min(elapsed, settings.duration or elapsed), description=description
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=0.5)


def summary_table(report: TrafficReport) -> Table:
    table = Table(title=f"Traffic summary ({report.elapsed_s:.1f} s)")
    for column in ("scenario", "started", "requests", "ok", "errors", "p50 ms", "p95 ms", "statuses"):
        table.add_column(column, justify="left" if column in ("scenario", "statuses") else "right")
    by_scenario: dict[str, list[RequestResult]] = defaultdict(list)
    for result in report.results:
        by_scenario[result.scenario].append(result)
    for name in sorted(set(by_scenario) | set(report.scenarios_started)):
        table.add_row(name, str(report.scenarios_started[name]), *_row(by_scenario[name]))
    table.add_row("total", str(sum(report.scenarios_started.values())), *_row(report.results), style="bold")
    return table


def _row(results: Sequence[RequestResult]) -> list[str]:
    latencies = sorted(r.latency_s * 1000 for r in results)
    statuses = Counter(r.status for r in results)
    ok = sum(r.ok for r in results)
    return [
        str(len(results)),
        str(ok),
        str(len(results) - ok),
        _percentile(latencies, 0.50),
        _percentile(latencies, 0.95),
        ", ".join(f"{s}×{n}" for s, n in sorted(statuses.items())),
    ]


def _percentile(sorted_values: Sequence[float], q: float) -> str:
    if not sorted_values:
        return "-"
    return f"{sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]:.0f}"


async def _main_async(
    settings: TrafficSettings, show_progress: bool, console: Console, served_models: frozenset[str]
) -> TrafficReport:
    stop, done = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    report = TrafficReport()
    progress = asyncio.create_task(_show_progress(settings, report, console, done)) if show_progress else None
    try:
        await run_traffic(settings, stop, report, served_models)
    finally:
        done.set()
        if progress:
            await progress
    return report


def check_chatbot_reachable(url: str) -> str | None:
    try:
        httpx.get(f"{url}/healthz", timeout=5.0).raise_for_status()
    except httpx.HTTPError as exc:
        return f"cannot reach the chatbot at {url} ({exc.__class__.__name__}: {exc})"
    return None


def served_models(url: str) -> frozenset[str]:
    """The models the chatbot lets a request ask for."""
    return frozenset(httpx.get(f"{url}/healthz", timeout=5.0).json().get("llm_models", ()))


def run(args: argparse.Namespace) -> int:
    settings = TrafficSettings(
        chatbot_url=args.chatbot_url.rstrip("/"),
        rate=args.rate,
        concurrency=args.concurrency,
        duration=args.duration,
        weights=args.scenarios or dict(DEFAULT_SCENARIO_WEIGHTS),
        seed=args.seed,
    )
    console = Console()
    if problem := check_chatbot_reachable(settings.chatbot_url):
        print(f"error: {SERVICE_NAME}: {problem}", file=sys.stderr)
        return 1
    models = served_models(settings.chatbot_url)
    # No log export here: the terminal belongs to the progress bar, and client logs add nothing.
    # No HTTP instrumentation: each request's client span is made in scenarios.py, named by its route.
    start_telemetry(SERVICE_NAME, args.otlp_endpoint, logs=False, instrument_http=False)
    try:
        report = asyncio.run(_main_async(settings, not args.no_progress, console, models))
    finally:
        stop_telemetry()
    console.print(summary_table(report))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmlens demo traffic", description=TRAFFIC_HELP)
    add_traffic_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
