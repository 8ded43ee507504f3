"""Child processes that can be started, waited on until ready, and stopped without leaving any behind.

Each child runs in its own session (process group), so a terminal's Ctrl-C reaches only the
orchestrator, which then stops the children in a chosen order, and so stopping a child also stops
anything it spawned: SIGTERM to the group, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

LOG_TAIL_LINES = 20


class ServiceFailed(Exception):
    """A child exited or never became ready; the message says which and shows its last log lines."""


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    argv: Sequence[str]
    ready_url: str | None = None  # GET answering 200 means ready; None: ready once started
    log_file: Path | None = None  # None: inherit the terminal (used for the traffic progress bar)


class ManagedProcess:
    def __init__(self, spec: ServiceSpec, env: Mapping[str, str]) -> None:
        self.spec = spec
        self._log = open(spec.log_file, "ab") if spec.log_file else None  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            list(spec.argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log else None,
            start_new_session=True,
        )

    @property
    def name(self) -> str:
        return self.spec.name

    def exit_code(self) -> int | None:
        return self.popen.poll()

    def wait_ready(self, timeout_s: float, cancelled: threading.Event | None = None) -> None:
        """Poll the readiness URL until it answers 200; raise ServiceFailed if the child dies or times out.

        Returns early, without error, once ``cancelled`` is set (the user pressed Ctrl-C meanwhile).
        """
        deadline = time.monotonic() + timeout_s
        while not (cancelled and cancelled.is_set()):
            code = self.exit_code()
            if code is not None:
                raise ServiceFailed(
                    f"{self.name} exited with code {code} before it was ready.{self.log_tail()}"
                )
            if self.spec.ready_url is None or _answers_ok(self.spec.ready_url):
                return
            if time.monotonic() > deadline:
                raise ServiceFailed(f"{self.name} was not ready after {timeout_s:.0f} s.{self.log_tail()}")
            time.sleep(0.2)

    def send_signal(self, sig: signal.Signals) -> None:
        if self.exit_code() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def stop(self, grace_s: float, first_signal: signal.Signals = signal.SIGTERM) -> int:
        """Ask the process group to stop, force it after ``grace_s``; returns the exit code."""
        self.send_signal(first_signal)
        return self.finish_stop(time.monotonic() + grace_s)

    def finish_stop(self, deadline: float) -> int:
        """Wait for an asked-to-stop process until ``deadline`` (monotonic), then kill its group."""
        try:
            code: int | None = self.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            code = None
        # Even after the leader exits, its children may linger in the group: kill the group outright.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        if code is None:
            code = self.popen.wait()
        if self._log:
            self._log.close()
        return code

    def log_tail(self) -> str:
        if not self.spec.log_file or not self.spec.log_file.exists():
            return ""
        lines = self.spec.log_file.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        if not lines:
            return f"\n  (its log {self.spec.log_file} is empty)"
        shown = "\n".join(f"  | {line}" for line in lines)
        return f"\n  last lines of {self.spec.log_file}:\n{shown}"


def _answers_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
