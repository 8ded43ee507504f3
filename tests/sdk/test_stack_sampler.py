"""The stack sampler in this process, ticked by the test: what an idle tick costs and what a busy one records."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from llmlens.sdk import stack_sampler
from llmlens.sdk.profile_spans import ActiveSpan
from llmlens.sdk.stack_sampler import StackSampler, cpu_mode_supported

pytestmark = pytest.mark.skipif(not cpu_mode_supported(), reason="on-CPU mode needs Linux's per-thread CPU clocks")
PERIOD_NS = 10_000_000  # 100 Hz


def spin(cpu_ns: int) -> int:
    """Pure-Python CPU on this thread until it has used `cpu_ns`."""
    start = time.thread_time_ns()
    rounds = 0
    while time.thread_time_ns() - start < cpu_ns:
        rounds += 1
    return rounds


def tick(sampler: StackSampler, ticks: int) -> None:
    for _ in range(ticks):
        sampler.sample()
        time.sleep(1 / 100)


@pytest.fixture
def idle_threads():
    stop = threading.Event()
    threads = [threading.Thread(target=stop.wait, name=f"idle-{i}") for i in range(3)]
    for t in threads:
        t.start()
    yield threads
    stop.set()
    for t in threads:
        t.join()


def test_an_idle_process_takes_no_stack_walks_and_a_busy_one_gets_every_sample(idle_threads):
    sampler = StackSampler(100, "cpu", lambda ident: None)
    sampler.own_idents.add(threading.get_ident())  # this thread plays the sampler's part: never sampled
    tick(sampler, 100)
    # No thread used CPU: no walks, and most ticks stop at the process's CPU clock without reading
    # any thread (a full tick comes round when the ticking thread's own CPU adds up to a period).
    assert sampler.walks == 0
    assert sampler.ticks == 100 and sampler.full_ticks <= 10, sampler.full_ticks
    assert sampler.drain().counts == {}

    used: list[int] = []
    go, done = threading.Event(), threading.Event()

    def busy() -> None:
        go.wait()
        start = time.thread_time_ns()
        spin(400_000_000)
        used.append(time.thread_time_ns() - start)
        done.wait()  # alive and idle, so the last ticks read its clock

    worker = threading.Thread(target=busy, name="busy")
    worker.start()
    tick(sampler, 2)  # the sampler sees the new thread before it burns
    full_before = sampler.full_ticks
    go.set()
    while not used:
        tick(sampler, 1)
    tick(sampler, 3)
    done.set()
    worker.join()

    assert sampler.walks > 0 and sampler.full_ticks > full_before
    counts = sampler.drain().counts
    busy_samples = {key: n for key, n in counts.items() if key[2] == "busy"}
    assert set(counts) == set(busy_samples), counts  # the idle threads were never charged
    total = sum(busy_samples.values())
    # Every period of the thread's CPU is one sample: the ticks the process clock let pass only
    # deferred reading it (what is left over is under one period, plus its wake-up before `start`).
    assert used[0] // PERIOD_NS <= total <= used[0] // PERIOD_NS + 1, (total, used)
    codes = sampler._codes  # drained: the codes went with the counts
    assert codes == {}
    for ids, offsets, _, span in busy_samples:
        assert len(ids) == len(offsets) and span is None


def test_the_busy_threads_samples_are_charged_to_the_function_burning(idle_threads):
    sampler = StackSampler(100, "cpu", lambda ident: None)
    sampler.own_idents.add(threading.get_ident())
    go = threading.Event()
    worker = threading.Thread(target=lambda: (go.wait(), spin(300_000_000)), name="busy")
    worker.start()
    tick(sampler, 2)
    go.set()
    while worker.is_alive():
        tick(sampler, 1)
    folded = sampler.drain()
    busy = {key: n for key, n in folded.counts.items() if key[2] == "busy"}
    assert sum(busy.values()) >= 25
    # Innermost frame first: the loop in spin(), called from the thread's target.
    leaves = {folded.codes[ids[0]].co_name for ids, _, _, _ in busy}
    assert leaves == {"spin"}, leaves
    for ids, _, _, _ in busy:
        names = [folded.codes[i].co_name for i in ids]
        assert names[1] == "<lambda>" and names[-1] == "_bootstrap", names


def test_wall_mode_charges_waiting_threads_every_tick(idle_threads):
    sampler = StackSampler(100, "wall", lambda ident: None)
    sampler.own_idents.add(threading.get_ident())
    tick(sampler, 20)
    assert sampler.full_ticks == 20
    counts = sampler.drain().counts
    per_thread = {name: 0 for name in ("idle-0", "idle-1", "idle-2")}
    for (_, _, name, _), n in counts.items():
        if name in per_thread:  # threads left by earlier tests in this process are sampled too
            per_thread[name] += n
    assert all(n >= 10 for n in per_thread.values()), per_thread  # ~19 periods of wall time each


# --- The C stack walk against the Python one -----------------------------------------------------

def _parked(target, *args):
    """A thread parked inside `target(*args, ready, stop)`; returns it with its stop event."""
    ready, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=target, args=(*args, ready, stop), daemon=True)
    thread.start()
    assert ready.wait(10)
    return thread, stop


def _recurse(depth, ready, stop):
    if depth:
        return _recurse(depth - 1, ready, stop)
    ready.set()
    stop.wait()


def _in_generator(ready, stop):
    def gen():
        yield 1
        ready.set()
        stop.wait()
        yield 2

    return list(gen())


def _both_walks(frames, idents):
    python_codes: dict = {}
    python = [None if (f := frames.get(i)) is None else stack_sampler.walk(f, python_codes) for i in idents]
    c_codes: dict = {}
    c = stack_sampler._stack_walk.stacks(frames, idents, c_codes, stack_sampler.MAX_DEPTH)
    return python, python_codes, c, c_codes


needs_c = pytest.mark.skipif(not stack_sampler.c_walker(), reason="the C stack walk was not built")


def test_the_c_extension_is_built():
    # pip install -e . builds it; a machine without a C compiler gets the Python walk (tested below).
    assert stack_sampler.c_walker(), "llmlens.sdk._stack_walk was not built: is a C compiler installed?"


@needs_c
def test_the_c_walk_equals_the_python_walk_on_real_threads():
    deep, stop_deep = _parked(_recurse, stack_sampler.MAX_DEPTH + 100)  # truncated at MAX_DEPTH
    shallow, stop_shallow = _parked(_recurse, 3)
    generator, stop_generator = _parked(_in_generator)
    try:
        frames = sys._current_frames()
        idents = [deep.ident, shallow.ident, generator.ident, -1]  # -1: no such thread
        python, python_codes, c, c_codes = _both_walks(frames, idents)
        assert c == python
        assert c_codes == python_codes and all(c_codes[i] is python_codes[i] for i in c_codes)
        deep_stack, shallow_stack, generator_stack, missing = c
        assert missing is None
        assert len(deep_stack[0]) == len(deep_stack[1]) == stack_sampler.MAX_DEPTH
        assert {c_codes[i].co_name for i in deep_stack[0][2:]} == {"_recurse"}  # innermost first
        names = [c_codes[i].co_name for i in shallow_stack[0]]
        assert names[:2] == ["wait", "wait"] and names[2:6] == ["_recurse"] * 4 and names[-1] == "_bootstrap"
        names = [c_codes[i].co_name for i in generator_stack[0]]
        assert names[2:5] == ["gen", "_in_generator", "run"], names
        assert all(offset >= 0 for offset in generator_stack[1])
        for stack in (deep_stack, shallow_stack, generator_stack):  # offsets as frame.f_lasti gives them
            assert all(offset % 2 == 0 for offset in stack[1])
    finally:
        for stop in (stop_deep, stop_shallow, stop_generator):
            stop.set()


@needs_c
def test_the_c_fold_equals_the_python_fold_on_real_threads(monkeypatch):
    deep, stop_deep = _parked(_recurse, stack_sampler.MAX_DEPTH + 100)
    shallow, stop_shallow = _parked(_recurse, 3)
    generator, stop_generator = _parked(_in_generator)
    try:
        frames = sys._current_frames()
        span = ActiveSpan(1, 2, "work")
        due = [(deep.ident, 2, "deep", None), (shallow.ident, 1, "shallow", span), (generator.ident, 5, "gen", None),
               (-1, 7, "gone", None), (shallow.ident, 3, "shallow", span)]  # the same stack twice: counts add up
        c_counts, c_codes = {}, {}
        c_walked = stack_sampler.fold(frames, due, c_counts, c_codes)
        monkeypatch.setattr(stack_sampler, "_stack_walk", None)
        python_counts, python_codes = {}, {}
        python_walked = stack_sampler.fold(frames, due, python_counts, python_codes)
        assert c_counts == python_counts and c_walked == python_walked
        assert c_codes == python_codes and all(c_codes[i] is python_codes[i] for i in c_codes)
        # The keys unpack to the stacks the walk gives, and every code they name is kept.
        stacks = stack_sampler.stacks(frames, [deep.ident, shallow.ident, generator.ident], {})
        by_name = {name: (stack_sampler.unpack_stack(stack), n) for (stack, name, _), n in c_counts.items()}
        assert by_name == {"deep": (stacks[0], 2), "shallow": (stacks[1], 4), "gen": (stacks[2], 5)}
        assert len(by_name["deep"][0][0]) == stack_sampler.MAX_DEPTH
        assert c_walked == sum(len(stack[0]) for stack in stacks) + len(stacks[1][0])
        assert {i for stack, _ in by_name.values() for i in stack[0]} == set(c_codes)
    finally:
        for stop in (stop_deep, stop_shallow, stop_generator):
            stop.set()


@needs_c
def test_the_c_fold_adds_the_codes_of_a_stack_only_when_it_is_new():
    thread, stop = _parked(_recurse, 2)
    try:
        frames = sys._current_frames()
        counts: dict = {}
        stack_sampler._stack_walk.fold(frames, [(thread.ident, 1, "t", None)], counts, {}, 64)
        codes: dict = {}  # the stack is in counts already: its codes were kept when it was added
        stack_sampler._stack_walk.fold(frames, [(thread.ident, 1, "t", None)], counts, codes, 64)
        assert codes == {} and list(counts.values()) == [2]
    finally:
        stop.set()


@needs_c
def test_the_c_walk_of_a_thread_that_exited_after_its_frames_were_taken():
    thread, stop = _parked(_recurse, 5)
    frames = sys._current_frames()
    stop.set()
    thread.join()  # its frames now hold the stack it had when they ended
    python, python_codes, c, c_codes = _both_walks(frames, [thread.ident])
    assert c == python and c_codes == python_codes
    assert [c_codes[i].co_name for i in c[0][0]].count("_recurse") == 6
    assert stack_sampler._stack_walk.stacks(sys._current_frames(), [thread.ident], {}, 10) == [None]


@needs_c
def test_the_c_walk_refuses_bad_arguments():
    walk = stack_sampler._stack_walk.stacks
    with pytest.raises(TypeError):
        walk({}, (), {}, 10)
    with pytest.raises(TypeError):
        walk({1: "not a frame"}, [1], {}, 10)
    with pytest.raises(ValueError):
        walk({}, [], {}, 0)
    fold = stack_sampler._stack_walk.fold
    with pytest.raises(TypeError):
        fold({}, [], {}, {})
    with pytest.raises(TypeError):
        fold({}, [(1, 1, "t")], {}, {}, 10)
    with pytest.raises(TypeError):
        fold({1: "not a frame"}, [(1, 1, "t", None)], {}, {}, 10)
    with pytest.raises(ValueError):
        fold({}, [], {}, {}, 0)


@needs_c
def test_the_c_wait_skips_ticks_only_while_no_sample_can_be_due():
    wait = stack_sampler.idle_waiter()
    period = 2_000_000
    process = time.CLOCK_PROCESS_CPUTIME_ID
    cpu = time.clock_gettime_ns(process)
    # This process idle (the test sleeps in C): no period of CPU is used, every tick is skipped.
    start = time.monotonic_ns()
    deadline, skipped = wait(start + period, period, 5, cpu, PERIOD_NS, [], [], 0)
    assert skipped == 4 and deadline >= start + 5 * period and time.monotonic_ns() >= deadline
    # The CPU needed is already used and no thread is known: the first tick runs.
    start = time.monotonic_ns()
    deadline, skipped = wait(start + period, period, 5, cpu - PERIOD_NS, PERIOD_NS, [], [], 0)
    assert skipped == 0 and deadline == start + period

    stop = threading.Event()
    busy = threading.Thread(target=lambda: [None for _ in iter(stop.is_set, True)])
    busy.start()
    try:
        busy_clock = stack_sampler.thread_cpu_clock(busy.native_id)
        mine = stack_sampler.thread_cpu_clock(threading.get_native_id())
        # A busy thread the sampler knows: the tick runs once its clock reaches its due reading.
        cpu, now = time.clock_gettime_ns(process), time.clock_gettime_ns(busy_clock)
        _, skipped = wait(time.monotonic_ns() + period, period, 1000, cpu, 0, [busy_clock], [now + 3 * period], now)
        assert skipped < 999 and time.clock_gettime_ns(busy_clock) >= now + 3 * period
        # The process busy but only on threads far from a sample, the rest of its CPU theirs: skipped.
        cpu, now_busy, now_mine = time.clock_gettime_ns(process), time.clock_gettime_ns(busy_clock), time.clock_gettime_ns(mine)
        far = 10**15
        _, skipped = wait(time.monotonic_ns() + period, period, 3, cpu, 0, [busy_clock, mine], [far, far],
                          now_busy + now_mine)
        assert skipped == 2
        # The same, but the busy thread unknown to the sampler (started since): its CPU makes the tick due.
        cpu, now_mine = time.clock_gettime_ns(process), time.clock_gettime_ns(mine)
        _, skipped = wait(time.monotonic_ns() + period, period, 1000, cpu, 0, [mine], [far], now_mine)
        assert skipped < 999
    finally:
        stop.set()
        busy.join()
    with pytest.raises(ValueError):
        wait(0, 0, 1, 0, 0, [], [], 0)
    with pytest.raises(TypeError):
        wait(0, 1, 1, 0, 0, [1], [], 0)


def test_the_sampler_finds_the_hot_function_with_the_python_walk(monkeypatch, idle_threads):
    monkeypatch.setattr(stack_sampler, "_stack_walk", None)
    assert not stack_sampler.c_walker()
    test_the_busy_threads_samples_are_charged_to_the_function_burning(idle_threads)


def test_without_the_extension_the_python_walk_is_used():
    # A fresh interpreter where importing the extension fails, as on a machine that could not build it.
    code = (
        "import sys; sys.modules['llmlens.sdk._stack_walk'] = None\n"
        "from llmlens.sdk import stack_sampler\n"
        "assert not stack_sampler.c_walker()\n"
        "codes = {}\n"
        "[stack] = stack_sampler.stacks(sys._current_frames(), [__import__('threading').get_ident()], codes)\n"
        "assert codes[stack[0][0]].co_name == '<module>'\n"
        "print('python walk')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "python walk", out.stderr
    env = {**os.environ, "LLMLENS_STACK_WALKER": "python"}
    out = subprocess.run([sys.executable, "-c", "from llmlens.sdk import stack_sampler; print(stack_sampler.c_walker())"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.stdout.strip() == "False", out.stderr
