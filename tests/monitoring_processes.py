"""Debian's Prometheus and Alertmanager as processes on free loopback ports, for tests and benchmarks.

Each runs from its own folder (config, storage, log) until the `with` block ends; a process that
exits or does not become ready fails with its log.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.server_process import free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
# Every alert to one receiver that sends nowhere: tests read alerts back from the v2 API.
BLACKHOLE = """\
route:
  receiver: blackhole
  group_wait: 1s
receivers:
  - name: blackhole
"""


@contextmanager
def alertmanager(folder: Path, config: str = BLACKHOLE) -> Iterator[str]:
    """A real Alertmanager (clustering off), its config checked by amtool first; yields its URL."""
    assert Path(ALERTMANAGER).exists(), "Debian's prometheus-alertmanager package is missing (make test installs it)"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "alertmanager.yml"
    path.write_text(config)
    check = subprocess.run(["amtool", "check-config", str(path)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0 and "SUCCESS" in check.stdout, check.stdout + check.stderr
    port = free_port()
    with _process(folder / "alertmanager.log",
                  [ALERTMANAGER, f"--config.file={path}", f"--storage.path={folder / 'data'}",
                   f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="]) as proc:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(proc, url, folder / "alertmanager.log")
        yield url


@contextmanager
def prometheus(folder: Path, config: dict[str, Any], *args: str) -> Iterator[str]:
    """A real Prometheus with this config (written as YAML, checked by promtool first); yields its URL."""
    assert Path(PROMETHEUS).exists(), "Debian's prometheus package is missing (make test installs it)"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    check = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    port = free_port()
    with _process(folder / "prometheus.log",
                  [PROMETHEUS, f"--config.file={path}", f"--storage.tsdb.path={folder / 'tsdb'}",
                   f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn", *args]) as proc:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(proc, url, folder / "prometheus.log")
        yield url


def alerts(alertmanager_url: str, alertname: str) -> list[dict[str, Any]]:
    """Alertmanager's active alerts of that name (v2 API)."""
    response = httpx.get(f"{alertmanager_url}/api/v2/alerts", params={"filter": f'alertname="{alertname}"'},
                         timeout=10)
    response.raise_for_status()
    return response.json()


@contextmanager
def _process(log_path: Path, argv: list[str]) -> Iterator[subprocess.Popen]:
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)


def _wait_ready(proc: subprocess.Popen, url: str, log_path: Path, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, f"{proc.args[0]} exited:\n{log_path.read_text()}"
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{proc.args[0]} not ready:\n{log_path.read_text()}"
        time.sleep(0.1)
