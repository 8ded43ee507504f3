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

Stacks are walked and folded by a small C extension (`_stack_walk.c`, one call a tick for every
thread due a sample) when it was built, else by `fold()` here: the same counts, several times the
instructions. LLMLENS_STACK_WALKER=python turns the C walk off.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from array import array
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
# While sampling, a stack is one bytes object, the code ids (unsigned long long) then the offsets
# (long long), native order: a key hashed once and compared with memcmp, whatever the depth (two
# tuples of 47 ints were hashed int by int, twice, and compared int by int). drain() unpacks them.
StackKey = tuple[bytes, str, ActiveSpan | None]
# A thread due samples at a tick: (ident, samples, thread name, span or None)
Due = tuple[int, int, str, ActiveSpan | None]


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


def stack_bytes(stack: Stack) -> bytes:
    """A stack as fold() keys it (what the C fold builds)."""
    return array("Q", stack[0]).tobytes() + array("q", stack[1]).tobytes()


def unpack_stack(key: bytes) -> Stack:
    """The (code ids, offsets) of a stack_bytes() key."""
    view = memoryview(key)
    half = len(key) // 2
    return tuple(view[:half].cast("Q")), tuple(view[half:].cast("q"))


def fold(frames: dict[int, Any], due: list[Due], counts: dict[StackKey, int], codes: dict[int, CodeType]) -> int:
    """counts[(stack bytes, name, span)] += n for each thread of `due` still in `frames`; the frames walked."""
    if _stack_walk is not None:
        return _stack_walk.fold(frames, due, counts, codes, MAX_DEPTH)
    walked = 0
    for ident, n, name, span in due:
        frame = frames.get(ident)
        if frame is None:
            continue
        stack = walk(frame, codes)
        walked += len(stack[0])
        key = (stack_bytes(stack), name, span)
        counts[key] = counts.get(key, 0) + n
    return walked


def idle_waiter() -> Callable[..., tuple[int, int]] | None:
    """The C sleep between on-CPU ticks that skips idle ticks without taking the GIL (`wait_due` in
    _stack_walk.c), or None without the extension (or off Linux)."""
    return getattr(_stack_walk, "wait_due", None)


def c_walker() -> bool:
    """Whether stacks are walked in C."""
    return _stack_walk is not None


class StackSampler:
    """sample() takes one sample of every thread; drain() hands over what was folded since the last drain."""

    NAMES_EVERY = 100  # full ticks between re-reads of thread names (a thread may be renamed)

    def __init__(self, hz: int, mode: str, span_on: Callable[[int], ActiveSpan | None]) -> None:
        if mode not in MODES:
            raise ValueError(f"profiling mode must be one of {MODES}, not {mode!r}")
        self.period_ns = 1_000_000_000 // hz
        self.mode = mode
        self.ticks = 0
        self.full_ticks = 0  # ticks that read the threads (all of them in wall mode)
        self.walks = 0  # stacks walked
        self.samples = 0  # samples recorded (a walk can record several: n periods of CPU)
        self.frames = 0  # frames walked
        self._span_on = span_on
        self._lock = threading.Lock()
        self._counts: dict[StackKey, int] = {}
        self._codes: dict[int, CodeType] = {}
        self._start_ns = time.time_ns()
        self._threads: dict[int, _Thread] = {}  # by ident, every thread seen at the last full tick
        self._clocked: list[_Thread] = []  # the threads whose CPU clocks are read (not the sampler's own)
        self.own_idents: set[int] = set()  # threads never sampled (the sampler's own)
        # Native ids known better than threading's: in a fork's child, the forking thread's Thread
        # keeps its id in the parent (CPython 3.11 does not update it after fork).
        self.native_ids: dict[int, int] = {}
        self._stale = False  # a thread's clock could not be read: refresh the threads at the next full tick
        # On-CPU idle test: the process CPU clock at the last full tick, and the largest carry a
        # thread kept after it. A thread has a sample due when its carry plus its CPU since reaches
        # a period, and no thread used more CPU than the process: so while the process's CPU since
        # the last full tick is under a period less the largest carry, no thread can have one due.
        self._process_cpu = -self.period_ns
        self._carried = 0
        # For the C wait's per-thread test: the threads' clock ids, the reading at which each has a
        # sample due, and the sum of their readings at the last full tick.
        self._clock_ids: list[int] = []
        self._due_at: list[int] = []
        self._clocks_sum = 0

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
            return  # no thread's CPU since the last full tick, plus its carry, can complete a sample
        self._process_cpu = process_cpu  # before the threads' clocks: their readings are not older
        self.full_ticks += 1
        frames = sys._current_frames()
        if frames.keys() != self._threads.keys() or self.full_ticks % self.NAMES_EVERY == 0 or self._stale:
            self._stale = False
            self._refresh_threads(frames.keys())
        period = self.period_ns
        clock = time.clock_gettime_ns
        carried = 0  # the largest carry
        due: list[tuple[_Thread, int]] = []
        clock_ids: list[int] = []
        due_at: list[int] = []
        clocks_sum = 0
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
            if carry > carried:
                carried = carry
            clock_ids.append(state.clock)
            due_at.append(now + period - carry)
            clocks_sum += now
        self._carried = carried
        self._clock_ids, self._due_at, self._clocks_sum = clock_ids, due_at, clocks_sum
        if due:
            self._fold(frames, due)

    def wait_args(self) -> tuple[int, int, list[int], list[int], int]:
        """What the C wait needs to tell a tick where no thread can have a sample due (see wait_due in _stack_walk.c).

        The process's CPU clock at the last full tick and the CPU it must use after it (a period
        less the largest carry); each thread's clock id and the reading at which it has a sample
        due; the sum of their readings at the last full tick.
        """
        return self._process_cpu, self.period_ns - self._carried, self._clock_ids, self._due_at, self._clocks_sum

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
        batch = [(state.ident, n, state.name, span_on(state.ident)) for state, n in due]
        with self._lock:  # drain() swaps both dicts: a stack's codes must land with its count
            self.frames += fold(frames, batch, self._counts, self._codes)
        self.walks += len(due)
        self.samples += sum(n for _, n in due)

    def drain(self) -> FoldedProfile:
        now = time.time_ns()
        with self._lock:
            counts, self._counts = self._counts, {}
            codes, self._codes = self._codes, {}
            start, self._start_ns = self._start_ns, now
        folded: dict[FoldedKey, int] = {}
        for (stack, name, span), n in counts.items():
            ids, offsets = unpack_stack(stack)
            folded[(ids, offsets, name, span)] = n
        return FoldedProfile(folded, codes, start, now)
