"""Proxies around openai's Stream / AsyncStream that finish the call's span when the stream ends.

Per chunk they note the first chunk's time (TTFT), finish reasons and the usage chunk; the
rest of the work happens once, at the end. Without `stream_options.include_usage` the
output token count is estimated as the number of content chunks (flagged on the span).
The span ends on exhaustion, on an error, on close() or on leaving a `with` block.
Every call into the state goes through `shielded()`: a bug of ours never interrupts the stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import wrapt

from llmlens import semconv
from llmlens.sdk.guard import internal_error, shielded
from llmlens.sdk.openai_call import LlmCall, usage_counts

_perf = time.perf_counter
RESPONSE_DONE_EVENTS = ("response.completed", "response.incomplete", "response.failed")


class _ChatState:
    """What a chat stream has shown so far; shared by the sync and async proxies."""

    __slots__ = ("call", "first_at", "reasons", "usage", "model", "response_id", "content_chunks", "texts", "done")

    def __init__(self, call: LlmCall) -> None:
        self.call = call
        self.first_at: float | None = None
        self.reasons: list[str] = []
        self.usage: Any = None
        self.model = ""
        self.response_id = ""
        self.content_chunks = 0
        self.texts: list[str] | None = [] if call.capture else None
        self.done = False

    def see(self, chunk: Any) -> None:
        if self.first_at is None:
            self.first_at = _perf()
            self.model = chunk.model or ""
            self.response_id = chunk.id or ""
        for choice in chunk.choices:
            content = choice.delta.content
            if content:
                self.content_chunks += 1
                if self.texts is not None:
                    self.texts.append(content)
            if choice.finish_reason:
                self.reasons.append(choice.finish_reason)
        usage = chunk.usage
        if usage is not None:
            self.usage = usage

    def finish(self, exc: BaseException | None) -> None:
        if self.done:
            return
        self.done = True
        call = self.call
        if exc is not None:
            call.fail(exc)
            return
        attrs: dict[str, Any] = {}
        if self.reasons:
            attrs[semconv.FINISH_REASONS] = tuple(self.reasons)
        if self.response_id:
            attrs["gen_ai.response.id"] = self.response_id
        if self.texts is not None:
            attrs[semconv.OUTPUT_MESSAGES] = json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": "".join(self.texts)}],
                  "finish_reason": self.reasons[0] if self.reasons else None}], ensure_ascii=False)
        if self.usage is not None:
            i, o, c, r = usage_counts(self.usage)
        else:
            i, o, c, r = 0, self.content_chunks, 0, 0
            attrs["llmlens.usage.estimated"] = True
        ttft = None if self.first_at is None else self.first_at - call.started
        call.finish(self.model, i, o, c, r, attrs=attrs, ttft_s=ttft, first_chunk_at=self.first_at)


class _ResponseState(_ChatState):
    """Responses API events: TTFT at the first output delta, facts from the final response."""

    __slots__ = ("final",)

    def __init__(self, call: LlmCall) -> None:
        super().__init__(call)
        self.final: Any = None

    def see(self, event: Any) -> None:
        kind = event.type
        if self.first_at is None and kind == "response.output_text.delta":
            self.first_at = _perf()
        elif kind in RESPONSE_DONE_EVENTS:
            self.final = event.response

    def finish(self, exc: BaseException | None) -> None:
        if self.done:
            return
        self.done = True
        call = self.call
        if exc is not None:
            call.fail(exc)
            return
        final = self.final
        attrs: dict[str, Any] = {"openai.api": "responses"}
        i = o = c = r = 0
        model = ""
        if final is not None:
            i, o, c, r = usage_counts(final.usage)
            model = final.model or ""
            attrs[semconv.FINISH_REASONS] = ("stop" if final.status == "completed" else str(final.status),)
            attrs["gen_ai.response.id"] = final.id
            if self.texts is not None:
                attrs[semconv.OUTPUT_MESSAGES] = json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": final.output_text}]}],
                    ensure_ascii=False)
        ttft = None if self.first_at is None else self.first_at - call.started
        call.finish(model, i, o, c, r, attrs=attrs, ttft_s=ttft, first_chunk_at=self.first_at)


class _SyncStream(wrapt.ObjectProxy):  # type: ignore[misc]
    _state_type: type[_ChatState] = _ChatState

    def __init__(self, wrapped: Any, call: LlmCall) -> None:
        super().__init__(wrapped)
        self._self_state = self._state_type(call)

    def __iter__(self) -> Iterator[Any]:
        # A generator resumes faster per chunk than a Python-level __next__; `for` loops take this path.
        return self._self_iterate()

    def _self_iterate(self) -> Iterator[Any]:
        state = self._self_state
        see = state.see
        try:
            for chunk in self.__wrapped__:
                try:
                    see(chunk)
                except Exception as exc:  # noqa: BLE001 - inline on the per-chunk path (see guard.py)
                    internal_error(see, exc)
                yield chunk
        except GeneratorExit:
            shielded(state.finish, None)  # the caller stopped reading early: not an error
            raise
        except BaseException as exc:
            shielded(state.finish, exc)
            raise
        shielded(state.finish, None)

    def __next__(self) -> Any:
        try:
            chunk = self.__wrapped__.__next__()
        except StopIteration:
            shielded(self._self_state.finish, None)
            raise
        except BaseException as exc:
            shielded(self._self_state.finish, exc)
            raise
        shielded(self._self_state.see, chunk)
        return chunk

    def __enter__(self) -> _SyncStream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            self.__wrapped__.__exit__(*exc_info)
        finally:
            shielded(self._self_state.finish, exc_info[1])

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            shielded(self._self_state.finish, None)


class _AsyncStream(wrapt.ObjectProxy):  # type: ignore[misc]
    _state_type: type[_ChatState] = _ChatState

    def __init__(self, wrapped: Any, call: LlmCall) -> None:
        super().__init__(wrapped)
        self._self_state = self._state_type(call)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._self_iterate()

    async def _self_iterate(self) -> AsyncIterator[Any]:
        state = self._self_state
        see = state.see
        try:
            async for chunk in self.__wrapped__:
                try:
                    see(chunk)
                except Exception as exc:  # noqa: BLE001 - inline on the per-chunk path (see guard.py)
                    internal_error(see, exc)
                yield chunk
        except GeneratorExit:
            shielded(state.finish, None)
            raise
        except BaseException as exc:
            shielded(state.finish, exc)
            raise
        shielded(state.finish, None)

    async def __anext__(self) -> Any:
        try:
            chunk = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            shielded(self._self_state.finish, None)
            raise
        except BaseException as exc:
            shielded(self._self_state.finish, exc)
            raise
        shielded(self._self_state.see, chunk)
        return chunk

    async def __aenter__(self) -> _AsyncStream:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await self.__wrapped__.__aexit__(*exc_info)
        finally:
            shielded(self._self_state.finish, exc_info[1])

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            shielded(self._self_state.finish, None)


class ChatStream(_SyncStream):
    _state_type = _ChatState


class AsyncChatStream(_AsyncStream):
    _state_type = _ChatState


class ResponseStream(_SyncStream):
    _state_type = _ResponseState


class AsyncResponseStream(_AsyncStream):
    _state_type = _ResponseState
