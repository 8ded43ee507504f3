"""The stack sampler in this process, ticked by the test: what an idle tick costs and what a busy one records."""

from __future__ import annotations

import threading
import time

import pytest

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
