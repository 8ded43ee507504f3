"""Histogram arithmetic for the metrics explorer: OTLP histogram points (explicit bounds or base-2
exponential) as counts per value interval, differences of cumulative points, merging, percentiles.

A distribution is a dict {(lower, upper): count} over half-open intervals (lower, upper]; the first
explicit bucket starts at 0 when its bound is positive (as Prometheus' histogram_quantile assumes),
the last one ends at +inf.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

Distribution = dict[tuple[float, float], float]


def explicit(bounds: Sequence[float], counts: Sequence[int]) -> Distribution:
    """An explicit-bounds histogram point's bucket counts (len(bounds) + 1 of them)."""
    if not bounds:
        return {(-math.inf, math.inf): float(sum(counts))} if counts else {}
    edges = [0.0 if bounds[0] > 0 else -math.inf, *bounds, math.inf]
    return {(edges[i], edges[i + 1]): float(c) for i, c in enumerate(counts[:len(edges) - 1]) if c}


def exponential(scale: int, zero_count: int, positive_offset: int, positive: Sequence[int],
                negative_offset: int = 0, negative: Sequence[int] = ()) -> Distribution:
    """An exponential histogram point: bucket index i covers (base**i, base**(i+1)], base = 2**(2**-scale)."""
    base = 2.0 ** (2.0 ** -scale)
    found: Distribution = {}
    if zero_count:
        found[(0.0, 0.0)] = float(zero_count)
    for k, c in enumerate(positive):
        if c:
            i = positive_offset + k
            found[(base ** i, base ** (i + 1))] = float(c)
    for k, c in enumerate(negative):
        if c:
            i = negative_offset + k
            found[(-(base ** (i + 1)), -(base ** i))] = float(c)
    return found


def difference(current: Distribution, previous: Distribution | None) -> Distribution:
    """What a cumulative point adds to the one before it; the whole point after a reset (any count
    went down) or without a previous point."""
    if previous is None:
        return dict(current)
    if any(current.get(key, 0.0) < count for key, count in previous.items()):
        return dict(current)
    return {key: count - previous.get(key, 0.0) for key, count in current.items() if count - previous.get(key, 0.0)}


def merge(distributions: Iterable[Distribution]) -> Distribution:
    merged: Distribution = {}
    for distribution in distributions:
        for key, count in distribution.items():
            merged[key] = merged.get(key, 0.0) + count
    return merged


def percentile(distribution: Distribution, q: float) -> float | None:
    """The q-quantile (0 < q < 1), interpolated linearly inside its interval; in the open-ended last
    bucket, that bucket's lower bound (the largest finite bound). None for an empty distribution."""
    total = sum(distribution.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    intervals = sorted(distribution.items(), key=lambda item: (item[0][1], item[0][0]))
    for (lower, upper), count in intervals:
        if seen + count >= rank:
            if math.isinf(upper):
                return lower if not math.isinf(lower) else None
            if math.isinf(lower) or lower == upper:
                return upper
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    (lower, upper), _ = intervals[-1]
    return upper if not math.isinf(upper) else lower
