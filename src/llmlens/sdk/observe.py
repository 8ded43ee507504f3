"""Spans for the steps of a RAG or agent pipeline: `@llmlens.observe(...)` and `with llmlens.span(...)`.

    @llmlens.observe(kind="retrieval")
    def retrieve(query): ...

    with llmlens.span("rerank", kind="chain", attributes={"k": 5}) as s:
        s.set_attribute("kept", 3)

Works on sync and async functions and on (async) generators; a generator's span covers its
whole iteration. Arguments and results are recorded (as `input.value` / `output.value` JSON)
only with capture_input / capture_output. Before init() both are no-ops.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode

from llmlens import semconv
from llmlens.sdk import runtime

F = TypeVar("F", bound=Callable[..., Any])
MAX_CAPTURE_CHARS = 16_384
# Step kinds whose OTel GenAI operation name is unambiguous; others carry only llmlens.span.kind.
KIND_OPERATIONS = {"retrieval": "retrieval", "tool": "execute_tool", "agent": "invoke_agent",
                   "workflow": "invoke_workflow"}


def _serialise(value: Any) -> str:
    try:
        text = json.dumps(value, default=repr, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= MAX_CAPTURE_CHARS else text[:MAX_CAPTURE_CHARS] + "…"


def _step_attributes(name: str, kind: str, attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {semconv.LLMLENS_SPAN_KIND: kind}
    operation = KIND_OPERATIONS.get(kind)
    if operation:
        attrs[semconv.OPERATION] = operation
    if kind == "tool":
        attrs["gen_ai.tool.name"] = name
    elif kind == "agent":
        attrs["gen_ai.agent.name"] = name
    if attributes:
        attrs.update(attributes)
    return attrs


def _fail(span: Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.set_attribute(semconv.ERROR_TYPE, type(exc).__qualname__)


@contextmanager
def span(
    name: str,
    *,
    kind: str = "span",
    attributes: Mapping[str, Any] | None = None,
    span_kind: SpanKind = SpanKind.INTERNAL,
) -> Iterator[Span]:
    """A span around a block, current inside it; yields the span (a no-op span before init())."""
    rt = runtime.active
    if rt is None:
        yield INVALID_SPAN
        return
    s = rt.tracer.start_span(name, kind=span_kind, attributes=_step_attributes(name, kind, attributes))
    token = otel_context.attach(trace.set_span_in_context(s))
    try:
        yield s
    except BaseException as exc:
        _fail(s, exc)
        raise
    finally:
        otel_context.detach(token)
        s.end()


def _call_attributes(fn: Callable[..., Any], capture_input: bool, args: tuple[Any, ...],
                     kwargs: dict[str, Any], static: dict[str, Any]) -> dict[str, Any]:
    if not capture_input:
        return static
    try:
        bound = inspect.signature(fn).bind_partial(*args, **kwargs)
        values: Any = {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}
    except (TypeError, ValueError):
        values = {"args": args, "kwargs": kwargs}
    return {**static, "input.value": _serialise(values), "input.mime_type": "application/json"}


def _set_output(s: Span, capture_output: bool, value: Any) -> None:
    if capture_output:
        s.set_attribute("output.value", _serialise(value))
        s.set_attribute("output.mime_type", "application/json")


@overload
def observe(fn: F) -> F: ...
@overload
def observe(fn: None = None, *, name: str | None = None, kind: str = "span", capture_input: bool = False,
            capture_output: bool = False, attributes: Mapping[str, Any] | None = None) -> Callable[[F], F]: ...


def observe(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    kind: str = "span",
    capture_input: bool = False,
    capture_output: bool = False,
    attributes: Mapping[str, Any] | None = None,
) -> Any:
    """Decorate a function so each call is a span named `name` (default: the function's qualname)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        span_name = name or func.__qualname__
        static = _step_attributes(span_name, kind, attributes)
        if inspect.isasyncgenfunction(func):
            wrapper = _async_generator_wrapper(func, span_name, static, capture_input, capture_output)
        elif inspect.iscoroutinefunction(func):
            wrapper = _async_wrapper(func, span_name, static, capture_input, capture_output)
        elif inspect.isgeneratorfunction(func):
            wrapper = _generator_wrapper(func, span_name, static, capture_input, capture_output)
        else:
            wrapper = _sync_wrapper(func, span_name, static, capture_input, capture_output)
        return functools.wraps(func)(wrapper)

    return decorate(fn) if fn is not None else decorate


def _sync_wrapper(func: Callable[..., Any], span_name: str, static: dict[str, Any], capture_input: bool,
                  capture_output: bool) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        rt = runtime.active
        if rt is None:
            return func(*args, **kwargs)
        s = rt.tracer.start_span(span_name, attributes=_call_attributes(func, capture_input, args, kwargs, static))
        token = otel_context.attach(trace.set_span_in_context(s))
        try:
            result = func(*args, **kwargs)
            _set_output(s, capture_output, result)
            return result
        except BaseException as exc:
            _fail(s, exc)
            raise
        finally:
            otel_context.detach(token)
            s.end()

    return wrapper


def _async_wrapper(func: Callable[..., Any], span_name: str, static: dict[str, Any], capture_input: bool,
                   capture_output: bool) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        rt = runtime.active
        if rt is None:
            return await func(*args, **kwargs)
        s = rt.tracer.start_span(span_name, attributes=_call_attributes(func, capture_input, args, kwargs, static))
        token = otel_context.attach(trace.set_span_in_context(s))
        try:
            result = await func(*args, **kwargs)
            _set_output(s, capture_output, result)
            return result
        except BaseException as exc:
            _fail(s, exc)
            raise
        finally:
            otel_context.detach(token)
            s.end()

    return wrapper


def _generator_wrapper(func: Callable[..., Any], span_name: str, static: dict[str, Any], capture_input: bool,
                       capture_output: bool) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        rt = runtime.active
        if rt is None:
            return (yield from func(*args, **kwargs))
        s = rt.tracer.start_span(span_name, attributes=_call_attributes(func, capture_input, args, kwargs, static))
        ctx = trace.set_span_in_context(s)
        gen = func(*args, **kwargs)
        items: list[Any] = []
        sent: Any = None
        try:
            while True:
                # The span is current only while the generator's own code runs, not between items.
                token = otel_context.attach(ctx)
                try:
                    item = gen.send(sent)
                except StopIteration as stop:
                    _set_output(s, capture_output, items if stop.value is None else stop.value)
                    return stop.value
                finally:
                    otel_context.detach(token)
                if capture_output:
                    items.append(item)
                sent = yield item
        except GeneratorExit:
            gen.close()
            raise
        except BaseException as exc:
            _fail(s, exc)
            raise
        finally:
            s.end()

    return wrapper


def _async_generator_wrapper(func: Callable[..., Any], span_name: str, static: dict[str, Any],
                             capture_input: bool, capture_output: bool) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        rt = runtime.active
        if rt is None:
            async for item in func(*args, **kwargs):
                yield item
            return
        s = rt.tracer.start_span(span_name, attributes=_call_attributes(func, capture_input, args, kwargs, static))
        ctx = trace.set_span_in_context(s)
        agen = func(*args, **kwargs)
        items: list[Any] = []
        try:
            while True:
                token = otel_context.attach(ctx)
                try:
                    item = await agen.__anext__()
                except StopAsyncIteration:
                    _set_output(s, capture_output, items)
                    return
                finally:
                    otel_context.detach(token)
                if capture_output:
                    items.append(item)
                yield item
        except GeneratorExit:
            await agen.aclose()
            raise
        except BaseException as exc:
            _fail(s, exc)
            raise
        finally:
            s.end()

    return wrapper
