"""The ingest worker pool is made on its first submit: until then the server has no child process,
not even multiprocessing's resource tracker; a bad size is still refused at once. Checked in fresh
interpreters, as this one may have started the resource tracker already."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmlens.server.receive.workers import OnDemandPool, start_workers

CHILDREN = """
import os
from pathlib import Path
def children():
    me = str(os.getpid())
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[1] == me:
                found.append(stat.parent.name)
        except OSError:
            pass
    return found
"""


def run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", CHILDREN + code], capture_output=True, text=True, check=True,
                          timeout=120).stdout


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_no_process_until_the_first_submit_then_workers_and_the_tracker() -> None:
    out = run("""
import os
from llmlens.server.receive.workers import start_workers
pool = start_workers(2, None, False)
print(len(children()))
print(pool.submit(os.getpid).result() != os.getpid())
print(len(children()) >= 2)
pool.shutdown(wait=True)
""")
    assert out.split() == ["0", "True", "True"]


def test_a_pool_shut_down_before_any_submit_starts_nothing_and_refuses_work() -> None:
    out = run("""
from llmlens.server.receive.workers import start_workers
pool = start_workers(2, None, False)
pool.shutdown(wait=True)
pool.shutdown(wait=False)  # twice is safe, as for any executor
try:
    pool.submit(print, 1)
except RuntimeError as exc:
    print(exc)
print(len(children()))
""")
    assert out.splitlines() == ["cannot schedule new futures after shutdown", "0"]


def test_a_bad_size_is_refused_when_the_pool_is_made_not_at_the_first_submit() -> None:
    with pytest.raises(ValueError, match="greater than 0"):
        start_workers(0, None, False)


def test_pool_health_finds_no_process_in_a_pool_not_made_yet() -> None:
    from llmlens.server.receive.pool_health import exit_codes, has_dead_worker, unstick

    pool = OnDemandPool(max_workers=1)
    assert not has_dead_worker(pool)
    assert exit_codes(pool) == "exit code unknown"
    assert unstick(pool)  # nothing to free: it returns at once
    pool.shutdown()
