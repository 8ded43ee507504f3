"""Log an outage once when it begins and once when it ends, however many requests meet it.

A full disk fails every commit until space returns: a line per failed request would bury the
two lines an operator needs (when it started and why, when it ended), and would itself fill the
disk that is already full when the log sits beside the data.
"""

from __future__ import annotations

import logging
import threading
import time


class OutageLog:
    """`failing(reason)` on every failure, `ok()` on every success; logs only the transitions."""

    def __init__(self, logger: logging.Logger, failing: str, recovered: str) -> None:
        self._log = logger
        self._failing = failing  # "the store refuses writes"
        self._recovered = recovered  # "the store takes writes again"
        self._since: float | None = None
        self._failures = 0
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        return self._since is not None

    def failing(self, reason: str) -> None:
        with self._lock:
            self._failures += 1
            if self._since is not None:
                return
            self._since = time.monotonic()
            self._failures = 1
        self._log.error("%s: %s (logged once until it recovers)", self._failing, reason)

    def ok(self) -> None:
        if self._since is None:  # the common case: no lock on the hot path
            return
        with self._lock:
            if self._since is None:
                return
            lasted, failures = time.monotonic() - self._since, self._failures
            self._since = None
        # WARNING, not INFO: whoever watches for the first line must see that it ended.
        self._log.warning("%s after %.0f s (%d failed meanwhile)", self._recovered, lasted, failures)
