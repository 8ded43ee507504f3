"""/metrics counts a model call under the app and department its trace's request span sets, when that
span comes in a later export (context_wait.py): real batches built as the ingest workers build them
(trace_index then the span metrics), committed in order, with the wait's own clock moved by hand."""

from __future__ import annotations

import pytest

from llmlens.server.metrics import derive
from llmlens.server.metrics import families as f
from llmlens.server.metrics.context_wait import ContextWait
from llmlens.server.metrics.registry import Registry
from llmlens.server.normalise import build_cost_model
from llmlens.server.receive.workers import build_batch
from llmlens.server.store import trace_index
from tests.integration.otlp_requests import llm_attrs, make_span, new_span_id, new_trace_id, trace_request

COST = build_cost_model(window=None)
WAIT_S = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Metrics:
    """The registry and the context wait, fed as ServerMetrics.on_commit feeds them."""

    def __init__(self, max_pending: int = 100) -> None:
        self.clock = Clock()
        self.registry = Registry(f.REGISTERED, max_series=1000)
        self.wait = ContextWait(self.registry, wait_s=WAIT_S, max_pending=max_pending, clock=self.clock)

    def commit(self, *spans) -> None:
        body = trace_request(spans, service="svc").SerializeToString()
        batch = build_batch("traces", body, "protobuf", COST, (trace_index.derive, derive.derive))
        delta = batch.derived.get(derive.NAME)
        if delta is not None:
            self.registry.merge(delta)
            if delta.waiting is not None:
                self.wait.add(delta.waiting)

    def requests(self) -> dict[tuple[str, ...], float]:
        """llm_requests_total by (status, app), and llm_cost_dollars_total's departments."""
        values = dict(next(s.series for s in self.registry.snapshot() if s.family.name == f.LLM_REQUESTS.name))
        return {(status, app): v for (_, status, app), v in values.items()}

    def departments(self) -> set[str]:
        values = dict(next(s.series for s in self.registry.snapshot() if s.family.name == f.LLM_COST.name))
        return {department for (_, department, _) in values}

    def expired(self) -> float:
        values = dict(next(s.series for s in self.registry.snapshot() if s.family.name == f.LLM_CONTEXT_EXPIRED.name))
        return values.get((), 0.0)


def request_and_call(app: str | None = "support", department: str | None = "cx"):
    """A request span (the root) setting app and department, and an LLM call under it."""
    trace_id, root_id = new_trace_id(), new_span_id()
    attrs = {k: v for k, v in (("llmlens.app", app), ("department", department)) if v is not None}
    root = make_span("handle_request", trace_id=trace_id, span_id=root_id, duration_ms=50, attrs=attrs)
    call = make_span("chat gpt-4o-mini", trace_id=trace_id, parent=root_id, duration_ms=20,
                     attrs=llm_attrs("gpt-4o-mini", 10, 5))
    return root, call


def test_a_call_exported_before_its_request_span_waits_for_its_app_and_department():
    m = Metrics()
    root, call = request_and_call()
    m.commit(call)
    assert m.requests() == {} and m.wait.pending == 1
    m.commit(root)
    assert m.requests() == {("ok", "support"): 1.0}
    assert m.departments() == {"cx"}
    assert m.wait.pending == 0
    m.clock.now += 2 * WAIT_S
    m.wait.expire()
    assert m.requests() == {("ok", "support"): 1.0} and m.expired() == 0  # counted once


def test_a_call_exported_after_its_request_span_is_counted_at_once_with_them():
    m = Metrics()
    root, call = request_and_call()
    m.commit(root)
    m.commit(call)
    assert m.requests() == {("ok", "support"): 1.0} and m.wait.pending == 0


def test_a_call_with_its_request_span_in_the_same_export_never_waits():
    m = Metrics()
    m.commit(*request_and_call())
    m.commit(*request_and_call(app=None, department=None))
    assert m.requests() == {("ok", "support"): 1.0, ("ok", ""): 1.0} and m.wait.pending == 0


def test_a_root_without_app_ends_the_wait_with_nothing_to_add():
    m = Metrics()
    root, call = request_and_call(app=None, department=None)
    m.commit(call)
    assert m.wait.pending == 1
    m.commit(root)
    assert m.requests() == {("ok", ""): 1.0} and m.wait.pending == 0 and m.expired() == 0


def test_a_call_whose_request_span_never_comes_is_counted_when_its_wait_ends():
    m = Metrics()
    _, call = request_and_call()
    m.commit(call)
    m.clock.now += WAIT_S - 1
    m.wait.expire()
    assert m.requests() == {}
    m.clock.now += 2
    m.wait.expire()
    assert m.requests() == {("ok", ""): 1.0} and m.expired() == 1 and m.wait.pending == 0
    m.commit(_)  # the request span after the wait: the call is not counted again
    assert m.requests() == {("ok", ""): 1.0}


def test_an_intermediate_span_brings_the_app_and_the_root_the_department():
    """Values come from several exports: the call waits until it lacks nothing, then takes both."""
    m = Metrics()
    trace_id, root_id, step_id = new_trace_id(), new_span_id(), new_span_id()
    call = make_span("chat", trace_id=trace_id, parent=step_id, attrs=llm_attrs("gpt-4o-mini", 1, 1))
    step = make_span("agent", trace_id=trace_id, span_id=step_id, parent=root_id, attrs={"llmlens.app": "agent-app"})
    root = make_span("request", trace_id=trace_id, span_id=root_id, attrs={"department": "research"})
    m.commit(call)
    m.commit(step)
    assert m.requests() == {} and m.wait.pending == 1
    m.commit(root)
    assert m.requests() == {("ok", "agent-app"): 1.0} and m.departments() == {"research"}


@pytest.mark.parametrize("calls", [3, 150])
def test_past_max_pending_the_oldest_are_counted_first(calls: int):
    m = Metrics(max_pending=100)
    for _ in range(calls):
        m.commit(request_and_call()[1])
    assert m.wait.pending == min(calls, 100)
    assert sum(m.requests().values()) == calls - m.wait.pending
    m.clock.now += WAIT_S + 1
    m.wait.expire()
    assert m.requests() == {("ok", ""): float(calls)} and m.expired() == calls
