"""Which span is active on each thread (or asyncio task), for tagging profile samples.

The sampler runs on its own thread and cannot read another thread's contextvars, so a span
processor keeps the spans started and not yet ended per *owner*: the asyncio task that started
the span when one was running, else the thread. A sample on a thread takes the innermost span of
its owner:

- plain threads: exact for spans that start and end on one thread (the usual
  `start_as_current_span` / `@observe` nesting). A span started on one thread and made current
  on another is seen on the first;
- a thread running an asyncio loop: the task the loop is running at that instant. On Python 3.12+
  its context is read (`Task.get_context()`), which also sees spans inherited from the task that
  created it; before 3.12 only spans the task started itself are seen. Samples taken while the
  loop runs no task (callbacks, the selector) carry no span.

Spans that are not recorded (a trace the sampler dropped) never reach a span processor, so their
samples carry no trace or span id.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any, NamedTuple

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

# Task.get_context() exists from 3.12; OTel keeps the current context in one ContextVar, which
# it does not expose publicly: without it, asyncio tasks fall back to the spans they started.
_TASK_CONTEXT = sys.version_info >= (3, 12)
_OTEL_CONTEXT_VAR = getattr(getattr(otel_context, "_RUNTIME_CONTEXT", None), "_current_context", None)


class ActiveSpan(NamedTuple):
    trace_id: int
    span_id: int
    name: str


def _active(span: Any) -> ActiveSpan | None:
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return ActiveSpan(ctx.trace_id, ctx.span_id, getattr(span, "name", "") or "")


class SpanTracker(SpanProcessor):
    """A span processor: on_start/on_end keep the per-owner stacks; span_on() reads them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stacks: dict[Any, list[Span]] = {}  # owner (task or thread ident) -> spans, innermost last
        self._owner_of: dict[int, Any] = {}  # id(span) -> owner
        self._loops: dict[int, asyncio.AbstractEventLoop] = {}  # thread ident -> loop seen running there
        self._enabled = True

    def disable(self) -> None:
        """After shutdown(): a provider llmlens does not own keeps this processor, which then does nothing."""
        self._enabled = False
        with self._lock:
            self._stacks.clear()
            self._owner_of.clear()
            self._loops.clear()

    def after_fork(self) -> None:
        """In a fork's child: only the forking thread remains; its spans are kept, the rest dropped.

        The lock is new: another of the parent's threads may have held it at the fork.
        """
        self._lock = threading.Lock()
        me = threading.get_ident()
        self._stacks = {owner: spans for owner, spans in self._stacks.items() if owner == me}
        self._owner_of = {key: owner for key, owner in self._owner_of.items() if owner == me}
        self._loops = {ident: loop for ident, loop in self._loops.items() if ident == me}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if not self._enabled:
            return
        owner: Any = threading.get_ident()
        loop = asyncio._get_running_loop()
        if loop is not None:
            self._loops[owner] = loop
            owner = asyncio.current_task(loop) or owner
        with self._lock:
            self._stacks.setdefault(owner, []).append(span)
            self._owner_of[id(span)] = owner

    def on_end(self, span: ReadableSpan) -> None:
        if not self._enabled:
            return
        with self._lock:
            owner = self._owner_of.pop(id(span), None)
            stack = self._stacks.get(owner)
            if stack is None:
                return
            for i in range(len(stack) - 1, -1, -1):  # usually the last one
                if stack[i] is span:
                    del stack[i]
                    break
            if not stack:
                del self._stacks[owner]

    def span_on(self, thread_ident: int) -> ActiveSpan | None:
        """The innermost active span on a thread (its running task's, for an asyncio loop's thread)."""
        loop = self._loops.get(thread_ident)
        owner: Any = thread_ident
        if loop is not None and loop.is_running():
            task = asyncio.current_task(loop)
            if task is None:
                return None
            if _TASK_CONTEXT and _OTEL_CONTEXT_VAR is not None:
                current = task.get_context().get(_OTEL_CONTEXT_VAR)
                return _active(trace.get_current_span(current)) if current is not None else None
            owner = task
        with self._lock:
            stack = self._stacks.get(owner)
            span = stack[-1] if stack else None
        return _active(span) if span is not None else None

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
