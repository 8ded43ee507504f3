"""Anomaly score: a value against its own baseline, in median absolute deviations (MADs).

The baseline is the same window at the same time of day on the previous days (up to 7) when at
least 3 of those days have a value; otherwise, while history is short, the 24 windows just
before the current one (at least 6 with a value). The score is (value - median) / MAD, so it
needs no threshold in the signal's own unit: 5 means five times the baseline's usual spread
above its median, -5 as far below. The MAD is floored at 5% of the median's size (and a tiny
constant) so a perfectly flat baseline does not turn a small wobble into an infinite score.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping

SEASONAL_DAYS = 7
MIN_SEASONAL = 3
ROLLING_WINDOWS = 24
MIN_ROLLING = 6
MAD_FLOOR_FRACTION = 0.05
MAD_FLOOR = 1e-9


def baseline_buckets(window_s: int) -> tuple[list[int], list[int]]:
    """Bucket numbers (windows before now: 1 = the window before the current one) of the
    seasonal and of the rolling baseline."""
    per_day = 86400 // window_s
    return [per_day * d for d in range(1, SEASONAL_DAYS + 1)], list(range(1, ROLLING_WINDOWS + 1))


def anomaly_score(values: Mapping[int, float], window_s: int) -> tuple[float, str] | None:
    """(score, which baseline) for `values[bucket]` (bucket 0 = the current window), or None when
    there is no current value or too little history."""
    if 0 not in values:
        return None
    seasonal, rolling = baseline_buckets(window_s)
    baseline = [values[b] for b in seasonal if b in values]
    kind = "same time on previous days"
    if len(baseline) < MIN_SEASONAL:
        baseline = [values[b] for b in rolling if b in values]
        kind = "previous windows"
        if len(baseline) < MIN_ROLLING:
            return None
    median = statistics.median(baseline)
    mad = statistics.median(abs(v - median) for v in baseline)
    scale = max(mad, MAD_FLOOR_FRACTION * abs(median), MAD_FLOOR)
    return (values[0] - median) / scale, kind
