"""Time windows for the UI's queries: parse start/end, pick a chart step, format for SQL."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from llmlens.server.errors import BadParameter

_RELATIVE = re.compile(r"^-?(\d+)(s|m|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Chart steps, smallest first; the first giving at most MAX_BUCKETS buckets wins.
STEPS_SECONDS = (10, 30, 60, 300, 900, 1800, 3600, 10800, 21600, 43200, 86400)
MAX_BUCKETS = 120
MAX_WINDOW = timedelta(days=400)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class WindowError(BadParameter):
    """A start/end/step the caller must fix; ``parameter`` names it."""


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def params(self) -> dict[str, str]:
        """Parameters for ``{start:DateTime64(9)}`` / ``{end:DateTime64(9)}`` placeholders."""
        return {"start": sql_time(self.start), "end": sql_time(self.end)}

    def buckets(self, step: int) -> list[str]:
        """Every bucket start of the window, as ClickHouse's toStartOfInterval aligns them (epoch
        multiples of step; every chart step divides a day), formatted like the queries' buckets."""
        first = int(self.start.timestamp()) // step * step
        last = int(self.end.timestamp())
        return [datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                for t in range(first, max(last, first + 1), step)]

    def step_seconds(self, requested: str | None = None) -> int:
        if requested:
            step = parse_duration_seconds(requested, "step")
            if self.seconds / step > 2000:
                raise WindowError("step", "step too small for this time range (more than 2000 buckets)")
            return step
        for step in STEPS_SECONDS:
            if self.seconds / step <= MAX_BUCKETS:
                return step
        return STEPS_SECONDS[-1]


def parse_window(start: str | None, end: str | None, default: str = "-1h",
                 now: datetime | None = None) -> Window:
    """``start``/``end`` as RFC 3339 or relative (``-15m``, ``-24h``, ``now``); UTC."""
    now = now or datetime.now(UTC)
    start_t = parse_time(start or default, now, "start")
    end_t = parse_time(end, now, "end") if end else now
    if start_t >= end_t:
        raise WindowError("start", "start must be before end")
    if end_t - start_t > MAX_WINDOW:
        raise WindowError("start", "time range longer than 400 days")
    return Window(start_t, end_t)


def parse_time(text: str, now: datetime, parameter: str) -> datetime:
    text = text.strip()
    if text == "now":
        return now
    if _RELATIVE.match(text):
        try:
            value = now - timedelta(seconds=parse_duration_seconds(text.lstrip("-"), parameter))
        except OverflowError:
            raise WindowError(parameter, f"{parameter}: {text[:40]!r} reaches too far back") from None
    else:
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise WindowError(parameter, f"{parameter}: expected RFC 3339 time or relative like -1h, got {text[:60]!r}") from None
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    # ClickHouse's DateTime64(9) covers 1900-2262; keep to what data can have.
    if not EARLIEST <= value <= LATEST:
        raise WindowError(parameter, f"{parameter}: {text[:40]!r} is outside {EARLIEST.year}-{LATEST.year}")
    return value


def parse_duration_seconds(text: str, parameter: str) -> int:
    match = _RELATIVE.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise WindowError(parameter, f"{parameter}: expected a duration like 30s, 5m, 1h, 7d, got {text!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def sql_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def rfc3339(value: object) -> str:
    """ClickHouse's '2025-01-02 03:04:05.123456789' (UTC) -> '2025-01-02T03:04:05.123456Z'."""
    text = str(value)
    if "T" in text:
        return text if text.endswith("Z") else text + "Z"
    date, _, clock = text.partition(" ")
    whole, _, fraction = clock.partition(".")
    return f"{date}T{whole}.{(fraction + '000000')[:6]}Z"
