"""Histogram arithmetic of the metrics explorer: intervals of OTLP points, differences, percentiles."""

from __future__ import annotations

import math

import pytest

from llmlens.server.query.histograms import difference, explicit, exponential, merge, percentile


def test_explicit_buckets_start_at_zero_and_end_open() -> None:
    assert explicit([10, 100], [1, 2, 3]) == {(0.0, 10): 1, (10, 100): 2, (100, math.inf): 3}
    assert explicit([-5, 5], [1, 0, 1]) == {(-math.inf, -5): 1, (5, math.inf): 1}


def test_percentiles_interpolate_inside_the_bucket_like_histogram_quantile() -> None:
    d = explicit([10, 100, 1000], [0, 10, 0, 0])
    assert percentile(d, 0.5) == pytest.approx(55.0)
    assert percentile(d, 0.9) == pytest.approx(91.0)
    both = explicit([10, 100], [5, 5, 0])
    assert percentile(both, 0.5) == pytest.approx(10.0) and percentile(both, 0.7) == pytest.approx(46.0)
    # in the open-ended bucket: its lower bound, the largest finite one
    assert percentile(explicit([10], [1, 9]), 0.99) == 10
    assert percentile({}, 0.5) is None


def test_exponential_buckets() -> None:
    d = exponential(scale=0, zero_count=0, positive_offset=3, positive=[4, 4])
    assert d == {(8.0, 16.0): 4, (16.0, 32.0): 4}
    assert percentile(d, 0.25) == pytest.approx(12.0) and percentile(d, 0.75) == pytest.approx(24.0)
    fine = exponential(scale=1, zero_count=2, positive_offset=0, positive=[1])
    assert list(fine.values()) == [2, 1] and list(fine)[0] == (0.0, 0.0)
    assert list(fine)[1] == pytest.approx((1.0, math.sqrt(2)))


def test_cumulative_differences_and_restarts() -> None:
    first, second = explicit([10], [1, 1]), explicit([10], [3, 1])
    assert difference(second, first) == {(0.0, 10): 2}
    assert difference(first, second) == first  # counts went down: a restart, the point counts whole
    assert difference(first, None) == first
    assert merge([first, second]) == {(0.0, 10): 4, (10, math.inf): 2}
