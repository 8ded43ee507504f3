"""Helpers for the demo tests: find processes by an environment marker, parse /metrics."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

MARKER_VARIABLE = "LLMLENS_DEMO_TEST_MARKER"


def new_marker_env() -> tuple[str, dict[str, str]]:
    """An environment whose marker every descendant process inherits, so leftovers can be found."""
    marker = uuid.uuid4().hex
    return marker, {**os.environ, MARKER_VARIABLE: marker, "PYTHONUNBUFFERED": "1"}


def processes_with_marker(marker: str) -> list[int]:
    """PIDs of live processes (not zombies) whose environment carries the marker (Linux /proc)."""
    needle = f"{MARKER_VARIABLE}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0") and not _is_zombie(entry):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours
            continue
    return found


def _is_zombie(proc_dir: Path) -> bool:
    stat = (proc_dir / "stat").read_text()
    return stat[stat.rindex(")") + 2] == "Z"


def wait_until_no_marked_processes(marker: str, timeout_s: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    left = processes_with_marker(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = processes_with_marker(marker)
    return left


def scrape(url: str) -> dict[str, list]:
    """GET a Prometheus /metrics page and parse it strictly; returns samples by metric family name."""
    response = httpx.get(url, timeout=10.0)
    response.raise_for_status()
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}
