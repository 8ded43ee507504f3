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

# A stack is kept as flat ints, innermost frame first: id(code), offset of the last instruction,
# id(code), offset, ... Hashing code objects (their names, bytecode and constants, every time) and
# computing line numbers (a scan of the line table) per frame per sample cost ~20x more; lines are
# looked up once per distinct (code, offset) when a profile is exported.
Stack = tuple[int, ...]
# (stack, thread name, span or None) -> number of samples
FoldedKey = tuple[Stack, str, ActiveSpan | None]


@dataclass
class FoldedProfile:
    counts: dict[FoldedKey, int]
    codes: dict[int, CodeType]  # id -> code of every frame in `counts`, kept alive so ids stay unique
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


class _Thread:
    """What the sampler keeps per thread between ticks."""

    __slots__ = ("name", "clock", "last", "carry")

    def __init__(self, name: str, clock: int | None) -> None:
        self.name = name
        self.clock = clock  # CPU clock id, None when the native id is unknown
        self.last: int | None = None  # clock reading at the previous tick
        self.carry = 0  # ns not yet turned into a sample


class StackSampler:
    """sample() takes one sample of every thread; drain() hands over what was folded since the last drain."""

    NAMES_EVERY = 100  # ticks between re-reads of thread names (a thread may be renamed)

    def __init__(self, hz: int, mode: str, span_on: Callable[[int], ActiveSpan | None]) -> None:
        if mode not in MODES:
            raise ValueError(f"profiling mode must be one of {MODES}, not {mode!r}")
        self.period_ns = 1_000_000_000 // hz
        self.mode = mode
        self.ticks = 0
        self._span_on = span_on
        self._lock = threading.Lock()
        self._counts: dict[FoldedKey, int] = {}
        self._codes: dict[int, CodeType] = {}
        self._start_ns = time.time_ns()
        self._threads: dict[int, _Thread] = {}  # by ident
        self.own_idents: set[int] = set()  # threads never sampled (the sampler's own)

    def _refresh_threads(self, idents: Any) -> None:
        """Names and CPU clocks of the threads now running; state kept for those already known."""
        by_ident = {t.ident: t for t in threading.enumerate()}
        threads: dict[int, _Thread] = {}
        for ident in idents:
            thread = by_ident.get(ident)
            name = thread.name if thread is not None else f"thread-{ident}"
            state = self._threads.get(ident)
            if state is None:
                native_id = getattr(thread, "native_id", None)
                state = _Thread(name, None if native_id is None else thread_cpu_clock(native_id))
            state.name = name
            threads[ident] = state
        self._threads = threads  # an exited thread's state goes: its ident can be reused

    def sample(self) -> None:
        frames = sys._current_frames()
        self.ticks += 1
        if frames.keys() != self._threads.keys() or self.ticks % self.NAMES_EVERY == 0:
            self._refresh_threads(frames.keys())
        wall = self.mode == "wall"
        now_wall = time.monotonic_ns()
        period = self.period_ns
        found: dict[FoldedKey, int] = {}
        codes: dict[int, CodeType] = {}
        for ident, frame in frames.items():
            state = self._threads[ident]
            if wall:
                now = now_wall
            elif state.clock is None or ident in self.own_idents:
                continue
            else:
                try:
                    now = time.clock_gettime_ns(state.clock)
                except OSError:  # the thread exited since the frames were taken
                    continue
            previous, state.last = state.last, now
            if previous is None or now <= previous or ident in self.own_idents:
                continue
            n, state.carry = divmod(state.carry + now - previous, period)
            if n == 0:
                continue
            stack: list[int] = []
            f: Any = frame
            depth = 0
            while f is not None and depth < MAX_DEPTH:
                code = f.f_code
                codes[id(code)] = code
                stack.append(id(code))
                stack.append(f.f_lasti)
                f = f.f_back
                depth += 1
            key = (tuple(stack), state.name, self._span_on(ident))
            found[key] = found.get(key, 0) + n
        del frames  # frames hold their locals alive
        if found:
            with self._lock:
                self._codes.update(codes)
                for key, n in found.items():
                    self._counts[key] = self._counts.get(key, 0) + n

    def drain(self) -> FoldedProfile:
        now = time.time_ns()
        with self._lock:
            counts, self._counts = self._counts, {}
            codes, self._codes = self._codes, {}
            start, self._start_ns = self._start_ns, now
        return FoldedProfile(counts, codes, start, now)

