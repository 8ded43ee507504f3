"""Spend forecast for the end of a budget period.

The method, in one paragraph: the forecast is the spend so far plus the expected spend of every
hour left in the period. An hour's expected spend is the mean spend of the same hour of the day
over the last seven days (an hour-of-day profile, so a quiet night and a busy afternoon are
expected as such), scaled by a level factor: the spend of the last six hours divided by what the
profile expected for those six hours (bounded to 0.2-5), so a day running hotter or cooler than
the past week carries that through to the period's end. With less than a full day of history
there is no profile yet, and the forecast falls back to a straight line: the spend rate of the
last six hours (or of the history there is) times the time left. benchmarks/spend_forecast.py
measures its error on synthetic demo-like history, against the straight line.
"""

from __future__ import annotations

from collections.abc import Mapping

PROFILE_DAYS = 7
LEVEL_HOURS = 6
LEVEL_BOUNDS = (0.2, 5.0)


def forecast_spend(spent: float, hourly: Mapping[int, float], history_hours: int, hours_left: float) -> float:
    """Forecast of the spend at the period's end.

    `hourly[k]` is the spend of the hour that ended k hours before now (k = 0 is the last hour;
    absent = nothing spent); `history_hours` is how far back there is any data at all; `hours_left`
    is the time from now to the period's end, in hours.
    """
    if hours_left <= 0:
        return spent
    days = min(PROFILE_DAYS, history_hours // 24)
    if days < 1:
        span = max(1, min(LEVEL_HOURS, history_hours))
        rate = sum(hourly.get(k, 0.0) for k in range(span)) / span
        return spent + rate * hours_left

    def profile(k_back: int, days: int) -> float:
        """Mean spend of the hour `k_back` hours ago and the same hour of `days - 1` days before."""
        return sum(hourly.get(k_back + 24 * d, 0.0) for d in range(days)) / days

    # The hour starting j hours from now is the same hour of the day as the hour that ended
    # 23 - j hours before now (yesterday), and the hours 24, 48, ... hours before that one.
    expected = [profile(23 - j, days) for j in range(24)]
    # The last hours against the same hours of the previous days (as many as the history covers).
    level_days = min(days, (history_hours - LEVEL_HOURS) // 24)
    level = 1.0
    if level_days >= 1:
        recent = sum(hourly.get(k, 0.0) for k in range(LEVEL_HOURS))
        recent_expected = sum(profile(k + 24, level_days) for k in range(LEVEL_HOURS))
        level = recent / recent_expected if recent_expected > 0 else 1.0
    level = min(max(level, LEVEL_BOUNDS[0]), LEVEL_BOUNDS[1])
    whole = int(hours_left)
    rest = sum(expected[j % 24] for j in range(whole)) + (hours_left - whole) * expected[whole % 24]
    return spent + level * rest


def linear_forecast(spent: float, hourly: Mapping[int, float], hours_left: float) -> float:
    """The straight line the forecast is compared with: the last six hours' rate to the end."""
    return spent + sum(hourly.get(k, 0.0) for k in range(LEVEL_HOURS)) / LEVEL_HOURS * max(hours_left, 0.0)
