"""Spend forecast for the end of a budget period.

The method, in one paragraph: the forecast is the spend so far plus the expected spend of every
hour left in the period. An hour's expected spend is the mean spend of the same hour of the day
on the last seven days of the same kind (working days, or Saturdays and Sundays, in the budget's
time zone) within the last four weeks: an hour-of-day profile, so a quiet night, a busy
afternoon and a quiet weekend are expected as such. It is scaled by a level factor, the spend
of the last six hours over what the profile expected for them (bounded to 0.2-5), so a day
running hotter or cooler than the past ones carries that through to the period's end. With less
than a full day of history there is no profile yet, and the forecast falls back to a straight
line: the spend rate of the last six hours (or of the history there is) times the time left.
benchmarks/spend_forecast.py measures its error on synthetic demo-like and office-hours
history, against the straight line.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

PROFILE_DAYS = 7
PROFILE_LOOKBACK_DAYS = 28
LEVEL_HOURS = 6
LEVEL_BOUNDS = (0.2, 5.0)


def forecast_spend(spent: float, hourly: Mapping[int, float], history_hours: int, hours_left: float,
                   now: datetime | None = None) -> float:
    """Forecast of the spend at the period's end.

    `hourly[k]` is the spend of the hour that ended k hours before now (k = 0 is the last hour;
    absent = nothing spent); `history_hours` is how far back there is any data at all; `hours_left`
    is the time from now to the period's end, in hours; `now` (in the budget's time zone) tells
    working days from weekends (without it, every day is of one kind).
    """
    if hours_left <= 0:
        return spent
    if history_hours < 24:
        span = max(1, min(LEVEL_HOURS, history_hours))
        rate = sum(hourly.get(k, 0.0) for k in range(span)) / span
        return spent + rate * hours_left
    profile = _Profile(hourly, history_hours, now)
    before = _Profile(hourly, history_hours, now, skip_hours=24)  # the level compares with earlier days only
    recent = sum(hourly.get(k, 0.0) for k in range(LEVEL_HOURS))
    recent_expected = sum(before.past(k) for k in range(LEVEL_HOURS))
    level = recent / recent_expected if recent_expected > 0 else 1.0
    level = min(max(level, LEVEL_BOUNDS[0]), LEVEL_BOUNDS[1])
    whole = int(hours_left)
    rest = sum(profile.future(j) for j in range(whole)) + (hours_left - whole) * profile.future(whole)
    return spent + level * rest


class _Profile:
    """Mean spend by (kind of day, hour of day) over the recent days of that kind."""

    def __init__(self, hourly: Mapping[int, float], history_hours: int, now: datetime | None,
                 skip_hours: int = 0) -> None:
        self.now = now
        values: dict[tuple[bool, int], list[float]] = {}
        for k in range(skip_hours, min(history_hours, PROFILE_LOOKBACK_DAYS * 24)):
            found = values.setdefault(self._key(-(k + 1)), [])
            if len(found) < PROFILE_DAYS:  # newest first: the last seven days of this kind
                found.append(hourly.get(k, 0.0))
        self.mean = {key: sum(v) / len(v) for key, v in values.items()}
        by_hour: dict[int, list[float]] = {}
        for (_, hour), mean in self.mean.items():
            by_hour.setdefault(hour, []).append(mean)
        self.any_kind = {hour: sum(v) / len(v) for hour, v in by_hour.items()}

    def _key(self, offset_hours: int) -> tuple[bool, int]:
        """(weekend?, hour of day) of the hour starting `offset_hours` from now."""
        if self.now is None:
            return False, offset_hours % 24
        start = self.now + timedelta(hours=offset_hours)
        return start.weekday() >= 5, start.hour

    def _expected(self, key: tuple[bool, int]) -> float:
        # A kind of day the history has not seen yet (a first weekend): the hour over any kind.
        return self.mean.get(key, self.any_kind.get(key[1], 0.0))

    def future(self, j: int) -> float:
        """Expected spend of the hour starting j hours from now."""
        return self._expected(self._key(j))

    def past(self, k: int) -> float:
        """What the profile expected for the hour that ended k hours ago."""
        return self._expected(self._key(-(k + 1)))


def linear_forecast(spent: float, hourly: Mapping[int, float], hours_left: float) -> float:
    """The straight line the forecast is compared with: the last six hours' rate to the end."""
    return spent + sum(hourly.get(k, 0.0) for k in range(LEVEL_HOURS)) / LEVEL_HOURS * max(hours_left, 0.0)
