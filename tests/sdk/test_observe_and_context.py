"""observe() / span() on every kind of callable, and context() values on spans."""

from __future__ import annotations

import asyncio

import pytest

import llmlens


@llmlens.observe(kind="retrieval", capture_input=True, capture_output=True)
def retrieve(query: str, k: int = 2) -> list[str]:
    return [f"{query}-{i}" for i in range(k)]


@llmlens.observe(name="rerank", kind="chain")
async def rerank(items: list[str]) -> list[str]:
    await asyncio.sleep(0)
    return sorted(items, reverse=True)


@llmlens.observe(kind="tool", capture_output=True)
def tokens(text: str):
    with llmlens.span("inner step"):
        pass
    yield from text.split()


@llmlens.observe(kind="agent")
async def agent_steps(n: int):
    for i in range(n):
        await asyncio.sleep(0)
        yield i


@llmlens.observe
def failing() -> None:
    raise ValueError("boom")


def test_decorators_are_no_ops_before_init(receiver):
    assert retrieve("q") == ["q-0", "q-1"]
    assert list(tokens("a b")) == ["a", "b"]
    with llmlens.span("nothing") as s:
        s.set_attribute("x", 1)
    with llmlens.context(user_id="u"):
        llmlens.score("quality", 1.0)
    assert receiver.spans == []


async def test_observe_on_sync_async_and_generators(sdk, receiver):
    sdk()
    with llmlens.span("pipeline", kind="chain", attributes={"rag.top_k": 2}) as root:
        root.set_attribute("step.count", 4)
        retrieve("refund")
        await rerank(["a", "b"])
        assert list(tokens("x y z")) == ["x", "y", "z"]
        assert [i async for i in agent_steps(3)] == [0, 1, 2]
    with pytest.raises(ValueError):
        failing()
    llmlens.shutdown()
    by_name = {s.name: s for s in receiver.spans}
    root = by_name["pipeline"]
    assert root.attributes["rag.top_k"] == 2 and root.attributes["step.count"] == 4
    for name in ("retrieve", "rerank", "tokens", "agent_steps"):
        assert by_name[name].parent_span_id == root.span_id, name
        assert by_name[name].trace_id == root.trace_id
    assert by_name["inner step"].parent_span_id == by_name["tokens"].span_id
    r = by_name["retrieve"].attributes
    assert r["llmlens.span.kind"] == "retrieval" and r["gen_ai.operation.name"] == "retrieval"
    assert '"query": "refund"' in r["input.value"] and r["output.value"] == '["refund-0", "refund-1"]'
    assert "input.value" not in by_name["rerank"].attributes  # recorded only when asked
    assert by_name["tokens"].attributes["gen_ai.tool.name"] == "tokens"
    assert by_name["tokens"].attributes["output.value"] == '["x", "y", "z"]'
    assert by_name["agent_steps"].attributes["gen_ai.operation.name"] == "invoke_agent"
    failed = by_name["failing"]
    assert failed.status_code == 2 and failed.attributes["error.type"] == "ValueError"


def test_context_values_on_every_span_inside(sdk, receiver, client):
    sdk(app="support")
    with llmlens.context(user_id="user-7", session_id="sess-9", department="sales", tenant="acme"), \
            llmlens.span("handle request"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    with llmlens.span("outside"):
        pass
    llmlens.shutdown()
    for name in ("handle request", "chat gpt-4o-mini"):
        a = receiver.spans_named(name)[0].attributes
        assert a["user.id"] == "user-7"
        assert a["session.id"] == "sess-9" and a["gen_ai.conversation.id"] == "sess-9"
        assert a["llmlens.department"] == "sales"
        assert a["llmlens.tag.tenant"] == "acme"
    assert "user.id" not in receiver.spans_named("outside")[0].attributes
