"""A worker SIGKILLed while writing its result: the real ProcessPoolExecutor never notices (its futures
hang, its manager thread would hold up the server's exit), and pool_health.unstick makes it break."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from llmlens.server.receive.pool_health import exit_codes, has_dead_worker, unstick

RESULT_BYTES = 400_000_000


def _pid() -> int:
    return os.getpid()


def _big_result(n: int) -> bytes:
    return b"x" * n


WRITE_SYSCALL = {"x86_64": 1, "aarch64": 64}.get(os.uname().machine)


def _writing_result(pid: int) -> bool:
    """The process is inside a write(2) of more than 1 MB: its result, being sent down the pipe."""
    fields = Path(f"/proc/{pid}/syscall").read_text().split()
    return fields[0] == str(WRITE_SYSCALL) and int(fields[3], 16) > 1_000_000


@pytest.mark.skipif(WRITE_SYSCALL is None or not Path("/proc/self/syscall").exists(),
                    reason="needs Linux's /proc/<pid>/syscall on x86_64 or aarch64")
def test_a_worker_killed_mid_result_hangs_the_pool_until_unstuck() -> None:
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    try:
        pid = pool.submit(_pid).result(timeout=60)
        assert not has_dead_worker(pool)
        future = pool.submit(_big_result, RESULT_BYTES)
        deadline = time.monotonic() + 60
        while not _writing_result(pid):
            assert time.monotonic() < deadline and not future.done(), "the worker never wrote its result"
            time.sleep(0.001)
        os.kill(pid, signal.SIGKILL)

        time.sleep(3)
        assert has_dead_worker(pool)
        assert f"pid {pid} exit code -9" in exit_codes(pool)
        # The defect worked around: the pool has not noticed (if this fails, CPython fixed it).
        assert not future.done(), "the pool noticed the death by itself"
        manager = pool._executor_manager_thread
        assert manager is not None and manager.is_alive()

        assert unstick(pool) is True
        assert unstick(pool) is False  # once per pool
        with pytest.raises(BrokenProcessPool):
            future.result(timeout=30)
        manager.join(30)
        assert not manager.is_alive(), "the manager thread would still hold up the interpreter's exit"
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
