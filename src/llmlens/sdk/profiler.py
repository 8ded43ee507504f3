"""The continuous profiler init(profiling=True) starts: a sampling thread and an export thread.

The sampling thread takes one sample of every thread `hz` times a second (stack_sampler); the
export thread folds what was sampled into one pprof profile every `export_interval_s` and pushes
it (profile_export), so a slow or unreachable server never delays sampling and never touches the
app's threads. A profile that cannot be pushed is dropped (one warning, see ProfilePusher). stop()
ends both threads and pushes the last profile within the shutdown's timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from llmlens.sdk.profile_export import ProfilePusher, SourcePaths, encode_pprof
from llmlens.sdk.profile_spans import SpanTracker
from llmlens.sdk.stack_sampler import StackSampler

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
        self.sampler = StackSampler(settings.hz, settings.mode, spans.span_on)
        self._pusher = pusher
        self._source_paths = SourcePaths()
        self._stop = threading.Event()
        self._last_push_timeout_s = 5.0
        self._sampling = threading.Thread(target=self._sample_loop, name="llmlens-profiler", daemon=True)
        self._exporting = threading.Thread(target=self._export_loop, name="llmlens-profile-export", daemon=True)

    def start(self) -> None:
        self._sampling.start()
        self._exporting.start()

    def alive(self) -> bool:
        return self._sampling.is_alive() or self._exporting.is_alive()

    def stop(self, timeout_ms: int) -> None:
        """Stop sampling, push what is left (within the timeout), and end both threads."""
        deadline = time.monotonic() + timeout_ms / 1000
        self._last_push_timeout_s = max(0.1, 0.8 * timeout_ms / 1000)
        self._stop.set()
        self._sampling.join(max(0.0, deadline - time.monotonic()))
        self._exporting.join(max(0.0, deadline - time.monotonic()))
        self.spans.disable()
        self._pusher.close()

    def _sample_loop(self) -> None:
        self.sampler.own_idents.add(threading.get_ident())
        interval = 1.0 / self.settings.hz
        next_tick = time.monotonic()
        while True:
            next_tick += interval
            delay = next_tick - time.monotonic()
            if delay < 0:  # fell behind (a busy GIL): skip the missed ticks, the clocks count the time
                next_tick = time.monotonic()
                delay = 0.0
            time.sleep(delay)  # not Event.wait: its Condition machinery costs about as much again per tick
            if self._stop.is_set():
                return
            try:
                self.sampler.sample()
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
