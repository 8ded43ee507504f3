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

Stacks are walked by a small C extension (`_stack_walk.c`, one call a tick for every thread due a
sample) when it was built, else by `walk()` here: the same stacks, ~7x the instructions a frame.
LLMLENS_STACK_WALKER=python turns the C walk off.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType
from typing import Any

from llmlens.sdk.profile_spans import ActiveSpan

try:
    from llmlens.sdk import _stack_walk
except ImportError:  # built without a C compiler: stacks are walked in Python
    _stack_walk = None
if os.environ.get("LLMLENS_STACK_WALKER", "").strip().lower() == "python":
    _stack_walk = None

MAX_DEPTH = 512  # frames kept per sample, the innermost ones (the server refuses stacks past 1024)
MODES = ("cpu", "wall")

# A stack is kept as two tuples of ints, innermost frame first: the ids of the frames' code objects
# and the offsets of their last instructions. Hashing code objects (their names, bytecode and
# constants, every time) and computing line numbers (a scan of the line table) per frame per sample
# cost ~20x more; lines are looked up once per distinct (code, offset) when a profile is exported.
Stack = tuple[tuple[int, ...], tuple[int, ...]]
# (code ids, offsets, thread name, span or None) -> number of samples
FoldedKey = tuple[tuple[int, ...], tuple[int, ...], str, ActiveSpan | None]


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
        time.clock_gettime_ns(time.CLOCK_PROCESS_CPUTIME_ID)
    except (OSError, AttributeError):
        return False
    return True


class _Thread:
    """What the sampler keeps per thread between ticks."""

    __slots__ = ("ident", "name", "clock", "last", "carry")

    def __init__(self, ident: int, name: str, clock: int | None) -> None:
        self.ident = ident
        self.name = name
        self.clock = clock  # CPU clock id, None when the native id is unknown
        self.last = 0  # clock reading at the previous full tick
        self.carry = 0  # ns not yet turned into a sample


def walk(frame: Any, codes: dict[int, CodeType]) -> Stack:
    """The stack from `frame` outwards; the code objects go into `codes`, by id."""
    frame_codes: list[CodeType] = []
    offsets: list[int] = []
    add_code, add_offset = frame_codes.append, offsets.append
    for _ in range(MAX_DEPTH):  # the attribute reads are most of the cost: nothing else per frame
        add_code(frame.f_code)
        add_offset(frame.f_lasti)
        frame = frame.f_back
        if frame is None:
            break
    ids = tuple(map(id, frame_codes))
    codes.update(zip(ids, frame_codes, strict=True))
    return ids, tuple(offsets)


def stacks(frames: dict[int, Any], idents: list[int], codes: dict[int, CodeType]) -> list[Stack | None]:
    """The stacks of the threads `idents` from their frames in `frames` (None for a thread not there)."""
    if _stack_walk is not None:
        return _stack_walk.stacks(frames, idents, codes, MAX_DEPTH)
    return [None if (frame := frames.get(ident)) is None else walk(frame, codes) for ident in idents]


def c_walker() -> bool:
    """Whether stacks are walked in C."""
    return _stack_walk is not None


class StackSampler:
    """sample() takes one sample of every thread; drain() hands over what was folded since the last drain."""

    NAMES_EVERY = 100  # ticks between re-reads of thread names (a thread may be renamed)

    def __init__(self, hz: int, mode: str, span_on: Callable[[int], ActiveSpan | None]) -> None:
        if mode not in MODES:
            raise ValueError(f"profiling mode must be one of {MODES}, not {mode!r}")
        self.period_ns = 1_000_000_000 // hz
        self.mode = mode
        self.ticks = 0
        self.full_ticks = 0  # ticks that read the threads (all of them in wall mode)
        self.walks = 0  # stacks walked
        self.samples = 0  # samples recorded (a walk can record several: n periods of CPU)
        self._span_on = span_on
        self._lock = threading.Lock()
        self._counts: dict[FoldedKey, int] = {}
        self._codes: dict[int, CodeType] = {}
        self._start_ns = time.time_ns()
        self._threads: dict[int, _Thread] = {}  # by ident, every thread seen at the last full tick
        self._clocked: list[_Thread] = []  # the threads whose CPU clocks are read (not the sampler's own)
        self.own_idents: set[int] = set()  # threads never sampled (the sampler's own)
        # Native ids known better than threading's: in a fork's child, the forking thread's Thread
        # keeps its id in the parent (CPython 3.11 does not update it after fork).
        self.native_ids: dict[int, int] = {}
        self._stale = False  # a thread's clock could not be read: refresh the threads at the next full tick
        # On-CPU idle test: the process CPU clock at the last full tick, and the CPU the threads
        # carried after it, so a tick knows when no thread can have a sample due.
        self._process_cpu = -self.period_ns
        self._carried = 0

    def _refresh_threads(self, idents: Any) -> None:
        """Names and CPU clocks of the threads now running; state kept for those already known."""
        by_ident = {t.ident: t for t in threading.enumerate()}
        threads: dict[int, _Thread] = {}
        for ident in idents:
            thread = by_ident.get(ident)
            name = thread.name if thread is not None else f"thread-{ident}"
            native_id = self.native_ids.get(ident) or getattr(thread, "native_id", None)
            clock = None if native_id is None else thread_cpu_clock(native_id)
            state = self._threads.get(ident)
            if state is None or state.clock != clock:  # new, or a new thread under an exited one's ident
                state = _Thread(ident, name, clock)
                state.last = self._reading(state)
            state.name = name
            threads[ident] = state
        self._threads = threads  # an exited thread's state goes: its ident can be reused
        self._clocked = [t for t in threads.values() if t.clock is not None and t.ident not in self.own_idents]

    def _reading(self, state: _Thread) -> int:
        """The reading a new thread's time is counted from.

        Wall mode: now. On-CPU mode: the thread's CPU clock for a thread already running when
        profiling starts (what it used before is not charged to the stack it shows now), else 0,
        the clock's value when the thread started: all its CPU is counted, however many ticks the
        process clock let pass before a full tick saw it.
        """
        if self.mode == "wall":
            return time.monotonic_ns()
        if self.full_ticks > 1:
            return 0
        if state.clock is not None:
            try:
                return time.clock_gettime_ns(state.clock)
            except OSError:
                state.clock = None  # it has exited already
        return 0

    def sample(self) -> None:
        self.ticks += 1
        if self.mode == "wall":
            self._sample_wall()
            return
        process_cpu = time.clock_gettime_ns(time.CLOCK_PROCESS_CPUTIME_ID)
        if process_cpu - self._process_cpu + self._carried < self.period_ns:
            return  # the threads' CPU since the last full tick, plus their carry, completes no sample
        self._process_cpu = process_cpu  # before the threads' clocks: their readings are not older
        self.full_ticks += 1
        frames = sys._current_frames()
        if frames.keys() != self._threads.keys() or self.ticks % self.NAMES_EVERY == 0 or self._stale:
            self._stale = False
            self._refresh_threads(frames.keys())
        period = self.period_ns
        clock = time.clock_gettime_ns
        carried = 0
        due: list[tuple[_Thread, int]] = []
        for state in self._clocked:
            try:
                now = clock(state.clock)
            except OSError:  # the thread exited: its ident may come back with another thread
                self._stale = True
                continue
            carry = state.carry + now - state.last
            state.last = now
            if carry >= period:
                n, carry = divmod(carry, period)
                due.append((state, n))
            state.carry = carry
            carried += carry
        self._carried = carried
        if due:
            self._fold(frames, due)

    def _sample_wall(self) -> None:
        self.full_ticks += 1
        frames = sys._current_frames()
        if frames.keys() != self._threads.keys() or self.ticks % self.NAMES_EVERY == 0:
            self._refresh_threads(frames.keys())
        now = time.monotonic_ns()
        due: list[tuple[_Thread, int]] = []
        for ident in frames:
            state = self._threads[ident]
            if ident in self.own_idents:
                continue
            previous, state.last = state.last, now
            if now <= previous:
                continue
            n, state.carry = divmod(state.carry + now - previous, self.period_ns)
            if n:
                due.append((state, n))
        if due:
            self._fold(frames, due)

    def _fold(self, frames: dict[int, Any], due: list[tuple[_Thread, int]]) -> None:
        span_on = self._span_on
        with self._lock:  # drain() swaps both dicts: a stack's codes must land with its count
            counts, codes = self._counts, self._codes
            walked = stacks(frames, [state.ident for state, _ in due], codes)
            for (state, n), stack in zip(due, walked, strict=True):
                if stack is None:
                    continue
                key = (stack[0], stack[1], state.name, span_on(state.ident))
                counts[key] = counts.get(key, 0) + n
        self.walks += len(due)
        self.samples += sum(n for _, n in due)

    def drain(self) -> FoldedProfile:
        now = time.time_ns()
        with self._lock:
            counts, self._counts = self._counts, {}
            codes, self._codes = self._codes, {}
            start, self._start_ns = self._start_ns, now
        return FoldedProfile(counts, codes, start, now)
