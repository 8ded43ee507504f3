"""The continuous profiler init(profiling=True) starts: a sampling thread and an export thread.

The sampling thread takes one sample of every thread `hz` times a second (stack_sampler); the
export thread folds what was sampled into one pprof profile every `export_interval_s` and pushes
it (profile_export), so a slow or unreachable server never delays sampling and never touches the
app's threads. A profile that cannot be pushed is dropped (one warning, see ProfilePusher). stop()
ends both threads and pushes the last profile within the shutdown's timeout.

A child made by os.fork() (a pre-fork server such as gunicorn, multiprocessing's fork start
method) has none of its parent's threads: the profiler starts anew there (os.register_at_fork),
with the samples, the spans of other threads and the HTTP connections of the parent left behind.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

from llmlens.sdk.profile_export import ProfilePusher, SourcePaths, encode_pprof
from llmlens.sdk.profile_spans import SpanTracker
from llmlens.sdk.stack_sampler import StackSampler, idle_waiter

log = logging.getLogger("llmlens.sdk")


@dataclass(frozen=True)
class ProfilerSettings:
    hz: int
    mode: str  # cpu | wall
    export_interval_s: float


class Profiler:
    def __init__(self, settings: ProfilerSettings, pusher: ProfilePusher, spans: SpanTracker) -> None:
        self.settings = settings
        self.spans = spans
        self._pusher = pusher
        self._source_paths = SourcePaths()
        self._last_push_timeout_s = 5.0
        self._new_threads()

    def _new_threads(self) -> None:
        self.sampler = StackSampler(self.settings.hz, self.settings.mode, self.spans.span_on)
        self._stop = threading.Event()
        self._sampling = threading.Thread(target=self._sample_loop, name="llmlens-profiler", daemon=True)
        self._exporting = threading.Thread(target=self._export_loop, name="llmlens-profile-export", daemon=True)

    def start(self) -> None:
        global _running
        _running = self
        _register_fork_hook()
        self._sampling.start()
        self._exporting.start()

    def _restart_in_child(self) -> None:
        """After os.fork(), in the child: the parent's threads are gone; new ones, new state, same settings."""
        self.spans.after_fork()
        self._pusher.after_fork()
        self._new_threads()
        self.sampler.native_ids[threading.get_ident()] = threading.get_native_id()
        self._sampling.start()
        self._exporting.start()

    def alive(self) -> bool:
        return self._sampling.is_alive() or self._exporting.is_alive()

    def stop(self, timeout_ms: int) -> None:
        """Stop sampling, push what is left (within the timeout), and end both threads."""
        global _running
        if _running is self:
            _running = None
        deadline = time.monotonic() + timeout_ms / 1000
        self._last_push_timeout_s = max(0.1, 0.8 * timeout_ms / 1000)
        self._stop.set()
        self._sampling.join(max(0.0, deadline - time.monotonic()))
        self._exporting.join(max(0.0, deadline - time.monotonic()))
        self.spans.disable()
        self._pusher.close()

    def _sample_loop(self) -> None:
        sampler = self.sampler
        sampler.own_idents.add(threading.get_ident())
        interval = sampler.period_ns
        # On-CPU: ticks no thread can have a sample due in are skipped in C, before the GIL is
        # taken (waking a Python thread and taking the GIL from a busy one is most of a tick's
        # cost); it returns at least every ~100 ms so that stop() is seen.
        wait = idle_waiter() if self.settings.mode == "cpu" else None
        most_skipped = max(1, self.settings.hz // 10)
        next_tick = time.monotonic_ns()
        while True:
            next_tick += interval
            now = time.monotonic_ns()
            if next_tick < now:  # fell behind (a busy GIL): skip the missed ticks, the clocks count the time
                next_tick = now
            if wait is not None:
                next_tick, skipped = wait(next_tick, interval, most_skipped, *sampler.wait_args())
                sampler.ticks += skipped
            else:
                time.sleep((next_tick - now) / 1e9)  # not Event.wait: its Condition costs about as much again a tick
            if self._stop.is_set():
                return
            try:
                sampler.sample()
            except Exception as exc:  # noqa: BLE001 - a profiler bug must not take the app down
                log.warning("llmlens: the profiler stopped after an internal error: %r", exc)
                return

    def _export_loop(self) -> None:
        while not self._stop.wait(self.settings.export_interval_s):
            self._export(None)
        self._sampling.join()  # the last samples are in before the last push
        self._export(self._last_push_timeout_s)

    def _export(self, timeout_s: float | None) -> None:
        try:
            folded = self.sampler.drain()
            if not folded.counts:
                return
            body = encode_pprof(folded, self.settings.mode, self.sampler.period_ns, self._source_paths)
            self._pusher.push(body, folded.start_ns, folded.end_ns, timeout_s)
        except Exception as exc:  # noqa: BLE001 - dropped, like a failed push
            log.warning("llmlens: a profile could not be exported and is dropped: %r", exc)


# The profiler running in this process, which a fork's child restarts. os.register_at_fork has no
# way to unregister: the hook is registered once and does nothing after stop().
_running: Profiler | None = None
_fork_hook_registered = False


def _register_fork_hook() -> None:
    global _fork_hook_registered
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_hook_registered = True


def _after_fork_in_child() -> None:
    profiler = _running
    if profiler is None:
        return
    try:
        profiler._restart_in_child()
    except Exception as exc:  # noqa: BLE001 - the child runs on without profiling
        log.warning("llmlens: the profiler could not restart after fork(): %r", exc)
