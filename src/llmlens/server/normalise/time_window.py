"""The times a record may carry to be stored: from the retention's start to a little past now.

Why at ingest: a record older than the retention would be dropped by the table's TTL soon after
its insert (the client got a 2xx for data that vanishes), and one far in the future breaks the
insert of everything committed with it (a day partition's `Date` ends in 2149; `DateTime` in 2106).
Records outside the window are rejected one by one through OTLP partial success, with the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

_DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class TimeWindow:
    """The settings `retention_days` and `max_future_skew_s`; `now()` gives the bounds at this moment."""

    retention_days: int = 30
    max_future_skew_s: float = 3600.0

    def at(self, now_ns: int) -> Bounds:
        return Bounds(now_ns - self.retention_days * _DAY_NS, now_ns + int(self.max_future_skew_s * 1e9),
                      now_ns, self)

    def now(self) -> Bounds:
        """Read the clock once (a request's records are judged against one instant)."""
        return self.at(time.time_ns())


@dataclass(frozen=True)
class Bounds:
    earliest: int  # ns since the epoch, inclusive
    latest: int
    now: int  # when the bounds were taken: the time a record observed without any time gets
    window: TimeWindow

    def check(self, time_ns: int, what: str) -> str:
        """'' when `time_ns` is inside; otherwise why not, naming `what` ("span 'x': start time")."""
        if time_ns < self.earliest:
            return f"{what} {_iso(time_ns)} is older than the {self.window.retention_days}-day retention"
        if time_ns > self.latest:
            return (f"{what} {_iso(time_ns)} is more than {self.window.max_future_skew_s:g} s ahead of the "
                    "server's clock (max_future_skew_s)")
        return ""


def _iso(time_ns: int) -> str:
    try:
        return datetime.fromtimestamp(time_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):  # past year 9999: the number says enough
        return f"{time_ns} ns"
