"""A bug inside the SDK's hooks never reaches the app: injected faults, the real openai client, the mock LLM.

Each test makes one of the hooks that run on the app's call raise (starting the call's span, finishing
it, failing it, seeing a stream's chunk, finishing a stream), then checks that the app still gets the
very result (same answer as an uninstrumented call) or the very error it would have got, that the fault
was counted, and that only the first one was logged.
"""

from __future__ import annotations

import logging
import urllib.request

import openai
import pytest

import llmlens
from llmlens.sdk import guard, openai_instrumentation
from llmlens.sdk.openai_call import LlmCall
from llmlens.sdk.openai_streams import _ChatState
from tests.sdk.conftest import free_port

MESSAGES = [{"role": "user", "content": "How long do refunds take?"}]
ERROR_HEADERS = {"x-mock-status": "429"}


class InjectedFault(Exception):
    """What the patched hooks raise; it must never reach the caller."""


def _raise(*_args, **_kwargs):
    raise InjectedFault("injected by the test")


# Hook name -> (object, attribute) patched to raise.
HOOKS = {
    "start": (LlmCall, "__init__"),
    "trace_headers": (openai_instrumentation, "_with_trace_headers"),
    "finish": (LlmCall, "finish"),
    "fail": (LlmCall, "fail"),
    "stream_see": (_ChatState, "see"),
    "stream_finish": (_ChatState, "finish"),
}


@pytest.fixture
def faults(monkeypatch, caplog):
    """inject(hook, ...) makes those hooks raise; returns nothing. The guard's count starts at 0."""
    monkeypatch.setattr(guard, "_errors", 0)
    caplog.set_level(logging.DEBUG, logger="llmlens.sdk")

    def inject(*hooks: str) -> None:
        for hook in hooks:
            target, attribute = HOOKS[hook]
            monkeypatch.setattr(target, attribute, _raise)

    return inject


def _warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "llmlens.sdk" and r.levelno >= logging.WARNING
            and "internal error" in r.getMessage()]


def _text(completion) -> str:
    return completion.choices[0].message.content


def _streamed_text(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.fixture
def expected(client) -> str:
    """The mock's answer to MESSAGES through an uninstrumented client (same prompt, same words)."""
    assert llmlens.sdk.runtime.active is None
    return _text(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES))


@pytest.mark.parametrize("hook", ["start", "trace_headers", "finish"])
def test_sync_call_returns_its_result(sdk, client, faults, caplog, expected, hook):
    sdk()
    faults(hook)
    results = [client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES) for _ in range(3)]
    assert [_text(r) for r in results] == [expected] * 3
    assert all(r.usage.completion_tokens > 0 for r in results)
    assert guard.internal_errors() == 3
    assert len(_warnings(caplog)) == 1  # warned once, then counted


@pytest.mark.parametrize("hook", ["start", "finish"])
async def test_async_call_returns_its_result(sdk, async_client, faults, caplog, expected, hook):
    sdk()
    faults(hook)
    result = await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert _text(result) == expected
    assert guard.internal_errors() == 1
    assert len(_warnings(caplog)) == 1


@pytest.mark.parametrize("hook", ["start", "fail"])
def test_failed_call_raises_its_own_error_sync(sdk, client, faults, caplog, hook):
    sdk()
    faults(hook)
    for stream in (False, True):
        with pytest.raises(openai.RateLimitError) as raised:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=stream,
                                           extra_headers=ERROR_HEADERS)
        assert raised.value.status_code == 429
    assert guard.internal_errors() == 2 and len(_warnings(caplog)) == 1


@pytest.mark.parametrize("hook", ["start", "fail"])
async def test_failed_call_raises_its_own_error_async(sdk, async_client, faults, caplog, hook):
    sdk()
    faults(hook)
    for stream in (False, True):
        with pytest.raises(openai.RateLimitError) as raised:
            await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=stream,
                                                       extra_headers=ERROR_HEADERS)
        assert raised.value.status_code == 429
    assert guard.internal_errors() == 2 and len(_warnings(caplog)) == 1


@pytest.mark.parametrize("hook", ["start", "stream_see", "stream_finish", "finish"])
def test_sync_stream_yields_every_chunk(sdk, client, faults, caplog, expected, hook):
    sdk()
    faults(hook)
    kwargs = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    looped = list(client.chat.completions.create(**kwargs))  # the generator path (`for`)
    with client.chat.completions.create(**kwargs) as stream:  # the `with` block
        in_block = list(stream)
    stream = client.chat.completions.create(**kwargs)  # next() by hand, then close()
    by_next = []
    while (chunk := next(stream, None)) is not None:
        by_next.append(chunk)
    stream.close()
    assert _streamed_text(looped) == _streamed_text(in_block) == _streamed_text(by_next) == expected
    assert guard.internal_errors() >= 3  # at least once per stream; see() fails per chunk
    assert len(_warnings(caplog)) == 1


@pytest.mark.parametrize("hook", ["start", "stream_see", "stream_finish", "finish"])
async def test_async_stream_yields_every_chunk(sdk, async_client, faults, caplog, expected, hook):
    sdk()
    faults(hook)
    kwargs = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    stream = await async_client.chat.completions.create(**kwargs)
    looped = [chunk async for chunk in stream]
    async with await async_client.chat.completions.create(**kwargs) as stream:
        by_anext = []
        while True:
            try:
                by_anext.append(await stream.__anext__())
            except StopAsyncIteration:
                break
    assert _streamed_text(looped) == _streamed_text(by_anext) == expected
    assert guard.internal_errors() >= 2
    assert len(_warnings(caplog)) == 1


@pytest.mark.parametrize("hook", ["stream_see", "stream_finish"])
def test_the_apps_own_error_inside_a_stream_loop_comes_out_as_itself(sdk, client, faults, hook):
    sdk()
    faults(hook)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    with pytest.raises(ZeroDivisionError, match="the app's own error"), stream:
        for i, _ in enumerate(stream):
            if i == 2:
                raise ZeroDivisionError("the app's own error inside its loop")
    assert guard.internal_errors() >= 1


def test_a_broken_chunk_hook_still_ends_the_span(sdk, receiver, client, faults):
    sdk()
    faults("stream_see")
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    llmlens.shutdown()
    spans = receiver.spans_named("chat gpt-4o-mini")
    assert len(spans) == 1  # the span is still finished and exported, with what could be read
    assert spans[0].attributes["gen_ai.request.stream"] is True
    assert guard.internal_errors() == len(chunks)


def test_internal_errors_are_exposed_to_prometheus(sdk, client, faults):
    sdk()
    faults("finish")
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    port = free_port()
    llmlens.start_metrics_server(port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    assert "llmlens_sdk_internal_errors_total 2.0" in text.splitlines()


def test_warnings_as_errors_cannot_turn_a_fault_into_an_exception(sdk, client, faults, expected):
    import warnings

    sdk()
    faults("finish")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _text(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)) == expected
    assert guard.internal_errors() == 1
