"""The free-space floor and the outage log, on the real file system under the test's folder (a floor
above its free space stands in for a full disk; tests/integration/test_disk_faults.py fills a real
tmpfs), and the `min_free_disk_mb` setting."""

from __future__ import annotations

import logging
import os

import pytest

from llmlens.server.errors import StoreError, answer, retry_after_header
from llmlens.server.settings import SettingsError, load_settings
from llmlens.server.store.disk import DiskFull, DiskWatch
from llmlens.server.store.outage import OutageLog


def free_bytes(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_below_the_floor_is_a_503_with_retry_after_and_above_it_nothing(tmp_path):
    watch = DiskWatch(tmp_path, min_free_bytes=0)
    assert watch.problem() is None
    watch.check()
    watch.min_free_bytes = free_bytes(tmp_path) + 2**40  # a floor this disk cannot reach
    problem = watch.problem()
    assert problem is not None and "MiB free on the data directory's disk, below the floor of" in problem
    with pytest.raises(DiskFull) as refused:
        watch.check()
    assert isinstance(refused.value, StoreError)
    assert answer(refused.value).http_status == 503 and answer(refused.value).grpc_code == 14  # UNAVAILABLE
    assert retry_after_header(refused.value) == {"Retry-After": "10"}


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(tmp_path, caplog):
    watch = DiskWatch(tmp_path, min_free_bytes=free_bytes(tmp_path) + 2**40)
    with caplog.at_level(logging.INFO, logger="llmlens.store.disk"):
        for _ in range(50):
            watch.problem()
        watch.min_free_bytes = 0
        for _ in range(50):
            watch.problem()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0][0] == "ERROR" and "the store refuses writes: " in lines[0][1] and "below the floor" in lines[0][1]
    assert lines[1][0] == "WARNING" and lines[1][1].startswith("the store takes writes again after ")
    assert lines[1][1].endswith(" s (50 failed meanwhile)")


def test_outage_log_counts_a_new_outage_afresh(caplog):
    outage = OutageLog(logging.getLogger("test.outage"), "inserts fail", "inserts succeed again")
    with caplog.at_level(logging.INFO, logger="test.outage"):
        outage.ok()
        outage.failing("disk full")
        outage.failing("still full")
        outage.ok()
        outage.failing("read-only")
        outage.ok()
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "inserts fail: disk full (logged once until it recovers)"
    assert messages[1].startswith("inserts succeed again after ") and messages[1].endswith("(2 failed meanwhile)")
    assert messages[2] == "inserts fail: read-only (logged once until it recovers)"
    assert messages[3].endswith("(1 failed meanwhile)") and len(messages) == 4


def test_min_free_disk_mb_setting(tmp_path):
    assert load_settings(env={}).min_free_disk_mb == 100
    assert load_settings({"min_free_disk_mb": 0}, env={}).min_free_disk_mb == 0
    assert load_settings(env={"LLMLENS_MIN_FREE_DISK_MB": "512"}).min_free_disk_mb == 512
    with pytest.raises(SettingsError, match="min_free_disk_mb must be between 0 and 1048576"):
        load_settings({"min_free_disk_mb": -1}, env={})
    with pytest.raises(SettingsError, match="not a valid int"):
        load_settings(env={"LLMLENS_MIN_FREE_DISK_MB": "lots"})
