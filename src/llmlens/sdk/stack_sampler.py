"""Samples the Python stack of every thread and folds the samples into counts.

On-CPU mode (the default) counts the CPU time each thread used since the last tick, read from the
thread's own CPU clock (Linux: `clock_gettime` on the thread CPU clock of its native id), and turns
it into samples of one period each (1/hz s), the remainder carried to the next tick. A thread
blocked on I/O, a lock, a sleep or a queue uses no CPU and so is never sampled; a thread that used
CPU is charged with the stack it shows at the tick. Wall mode charges every thread with the wall
time since the last tick instead, waiting or not.

Only Python frames are seen (`sys._current_frames()`): time in C code (a regex, numpy, a
compression) is charged to the Python function that called it. A thread not started through
`threading` has no native id the sampler can read and is skipped in on-CPU mode.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType
from typing import Any

from llmlens.sdk.profile_spans import ActiveSpan

MAX_DEPTH = 512  # frames kept per sample, the innermost ones (the server refuses stacks past 1024)
MODES = ("cpu", "wall")

Frame = tuple[CodeType, int]  # (code, line)
# (frames innermost first, thread name, span or None) -> number of samples
FoldedKey = tuple[tuple[Frame, ...], str, ActiveSpan | None]


@dataclass
class FoldedProfile:
    counts: dict[FoldedKey, int]
    start_ns: int  # wall clock, Unix epoch
    end_ns: int


def thread_cpu_clock(native_id: int) -> int:
    """The clock id of a thread's CPU time on Linux (the kernel's MAKE_THREAD_CPUCLOCK, as glibc builds it).

    Built from the native id rather than `time.pthread_getcpuclockid(ident)`, which would read the
    pthread structure of a thread that may have exited since: reading a gone thread's clock this
    way fails with EINVAL instead.
    """
    return ((~native_id) << 3) | 6  # CPUCLOCK_PERTHREAD_MASK (4) | CPUCLOCK_SCHED (2)


def cpu_mode_supported() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        time.clock_gettime_ns(thread_cpu_clock(threading.get_native_id()))
    except (OSError, AttributeError):
        return False
    return True


class StackSampler:
    """sample() takes one sample of every thread; drain() hands over what was folded since the last drain."""

    def __init__(self, hz: int, mode: str, span_on: Callable[[int], ActiveSpan | None]) -> None:
        if mode not in MODES:
            raise ValueError(f"profiling mode must be one of {MODES}, not {mode!r}")
        self.period_ns = 1_000_000_000 // hz
        self.mode = mode
        self._span_on = span_on
        self._lock = threading.Lock()
        self._counts: dict[FoldedKey, int] = {}
        self._start_ns = time.time_ns()
        self._last: dict[int, int] = {}  # thread ident -> clock reading at the previous tick
        self._carry: dict[int, int] = {}  # thread ident -> ns not yet turned into a sample
        self.own_idents: set[int] = set()  # threads never sampled (the sampler's own)

    def _elapsed(self, ident: int, thread: Any, now_wall: int) -> int:
        """ns this thread is charged with since its previous tick: CPU time, or wall time in wall mode."""
        if self.mode == "wall":
            now = now_wall
        else:
            native_id = getattr(thread, "native_id", None)
            if native_id is None:
                return 0
            try:
                now = time.clock_gettime_ns(thread_cpu_clock(native_id))
            except OSError:  # the thread exited since the frames were taken
                return 0
        previous = self._last.get(ident)
        self._last[ident] = now
        return 0 if previous is None else now - previous

    def sample(self) -> None:
        now_wall = time.monotonic_ns()
        threads = {t.ident: t for t in threading.enumerate()}
        frames = sys._current_frames()
        found: dict[FoldedKey, int] = {}
        for ident, frame in frames.items():
            if ident in self.own_idents:
                continue
            thread = threads.get(ident)
            elapsed = self._elapsed(ident, thread, now_wall)
            if elapsed <= 0:
                continue
            n, self._carry[ident] = divmod(self._carry.get(ident, 0) + elapsed, self.period_ns)
            if n == 0:
                continue
            stack: list[Frame] = []
            f: Any = frame
            while f is not None and len(stack) < MAX_DEPTH:
                stack.append((f.f_code, f.f_lineno or 0))
                f = f.f_back
            name = thread.name if thread is not None else f"thread-{ident}"
            key = (tuple(stack), name, self._span_on(ident))
            found[key] = found.get(key, 0) + n
        for gone in self._last.keys() - frames.keys():  # exited: an ident can be reused by a new thread
            del self._last[gone]
            self._carry.pop(gone, None)
        del frames  # frames hold their locals alive
        if found:
            with self._lock:
                for key, n in found.items():
                    self._counts[key] = self._counts.get(key, 0) + n

    def drain(self) -> FoldedProfile:
        now = time.time_ns()
        with self._lock:
            counts, self._counts = self._counts, {}
            start, self._start_ns = self._start_ns, now
        return FoldedProfile(counts, start, now)

