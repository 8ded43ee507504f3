"""The in-flight byte budget shared by the OTLP receivers."""

from __future__ import annotations

import pytest

from llmlens.server.errors import Overloaded, answer, retry_after_header
from llmlens.server.receive.inflight import InflightBytes

MIB = 1024 * 1024


def test_bodies_are_held_until_released_and_refused_past_the_budget() -> None:
    """Three 3 MiB bodies fit in 10 MiB, a fourth is refused as retryable overload (429 + Retry-After)."""
    budget = InflightBytes(10 * MIB)
    held = [budget.hold(3 * MIB) for _ in range(3)]
    assert budget.used == 9 * MIB
    with pytest.raises(Overloaded) as refused:
        budget.hold(3 * MIB)
    assert answer(refused.value).http_status == 429
    assert retry_after_header(refused.value) == {"Retry-After": "1"}
    assert "bytes" in str(refused.value)
    assert budget.used == 9 * MIB  # the refused body holds nothing
    held[0].release()
    with budget.hold(3 * MIB):
        assert budget.used == 9 * MIB
    assert budget.used == 6 * MIB


def test_a_body_grows_as_it_arrives_and_is_refused_when_it_no_longer_fits() -> None:
    """A body without Content-Length grows chunk by chunk; the chunk that would pass the budget is refused."""
    budget = InflightBytes(4 * MIB)
    other = budget.hold(2 * MIB)
    body = budget.hold()
    body.resize(1 * MIB)
    body.resize(2 * MIB)
    with pytest.raises(Overloaded):
        body.resize(2 * MIB + 1)
    assert body.size == 2 * MIB and budget.used == 4 * MIB
    body.resize(100)  # shrinking always succeeds
    assert budget.used == 2 * MIB + 100
    other.release()
    body.release()
    body.release()  # twice is harmless
    assert budget.used == 0


def test_a_body_alone_may_exceed_the_budget() -> None:
    """With nothing else in flight a body larger than the budget is taken (a budget below the body
    size limit must not refuse everything); beside it, nothing else is."""
    budget = InflightBytes(1 * MIB)
    big = budget.hold(5 * MIB)
    big.resize(6 * MIB)
    with pytest.raises(Overloaded):
        budget.hold(1)
    big.release()
    assert budget.hold(1).size == 1
