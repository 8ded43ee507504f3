"""What a worker pool's processes say about its health, and freeing a pool stuck on a dead worker.

A ProcessPoolExecutor notices a worker's death by its process sentinel, except when the worker dies
while writing its result: the pool's manager thread is then reading that message and waits for the
rest forever (the parent holds the result pipe's write end too, so no end of file comes), none of
the pool's futures complete, and the thread holds up the interpreter's exit. Seen on CPython 3.11
with a worker SIGKILLed mid-result (tests/unit/test_pool_health.py reproduces it).

These read the executor's private state (`_processes`, `_result_queue`, `_executor_manager_thread`),
the same in CPython 3.9 to 3.13; each degrades to "nothing known" if that state is missing.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import weakref
from concurrent.futures import ProcessPoolExecutor

_UNSTICK_CHUNK = bytes(1 << 20)
_UNSTICK_LIMIT_S = 30.0
_unsticking: weakref.WeakSet[ProcessPoolExecutor] = weakref.WeakSet()


def _processes(pool: ProcessPoolExecutor) -> list:
    with contextlib.suppress(Exception):
        return list(dict(pool._processes or {}).values())
    return []


def has_dead_worker(pool: ProcessPoolExecutor) -> bool:
    """A worker process has exited (workers of a pool never exit on their own while it runs)."""
    return any(process.exitcode is not None for process in _processes(pool))


def exit_codes(pool: ProcessPoolExecutor) -> str:
    """How the pool's processes ended, for the log (-9: killed by SIGKILL, the OOM killer's signal)."""
    codes = [f"pid {p.pid} exit code {p.exitcode}" for p in _processes(pool) if p.exitcode is not None]
    return ", ".join(codes) or "exit code unknown"


def unstick(pool: ProcessPoolExecutor) -> bool:
    """Make a pool whose worker died mid-result break as it should; True if this call began it (it
    begins once per pool, and returns at once).

    Its other workers are terminated, then zero bytes are fed into the result pipe until the manager
    thread has read the torn message whole: it fails to unpickle it, marks the pool broken and fails
    every pending future with BrokenProcessPool, which callers already retry on a new pool.
    """
    if pool in _unsticking:
        return False
    _unsticking.add(pool)
    for process in _processes(pool):
        with contextlib.suppress(Exception):
            process.terminate()
    try:
        manager = pool._executor_manager_thread
        fd = pool._result_queue._writer.fileno()
    except (AttributeError, OSError):
        return True
    threading.Thread(target=_feed_until_read, args=(manager, fd), name="llmlens-pool-unstick", daemon=True).start()
    return True


def _feed_until_read(manager: threading.Thread | None, fd: int) -> None:
    deadline = time.monotonic() + _UNSTICK_LIMIT_S
    with contextlib.suppress(OSError, ValueError):
        os.set_blocking(fd, False)  # never block this thread once the manager stops reading
        while manager is not None and manager.is_alive() and time.monotonic() < deadline:
            _, writable, _ = select.select([], [fd], [], 0.1)
            if writable:
                with contextlib.suppress(BlockingIOError):
                    os.write(fd, _UNSTICK_CHUNK)
