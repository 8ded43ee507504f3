"""The one rule for SDK code that runs inside the app's own calls: it never changes their outcome.

Instrumentation hooks (starting an LLM call's span, reading its response, seeing each chunk of
a stream, finishing the span) run on the app's thread, between the app and its `openai` call.
A bug there must cost telemetry, never the app's result or error. Every such hook is called
through `shielded()`; the per-chunk loops of streams use a plain try that hands the exception to
`internal_error()` instead (a try costs nothing until it catches; a call costs ~100 ns a chunk).
Either way the exception is counted (`internal_errors()`, exposed to Prometheus as
`llmlens_sdk_internal_errors_total`), the first one is logged with its traceback, and the app's
call goes on.

Logged, not `warnings.warn`-ed: an app running with warnings as errors would turn the warning
itself into an exception raised out of its call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("llmlens.sdk")

_lock = threading.Lock()
_errors = 0


def shielded(hook: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """`hook(*args, **kwargs)`, or None when it raised (counted; the first one is logged)."""
    try:
        return hook(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - telemetry must never change the caller's outcome
        internal_error(hook, exc)
        return None


def internal_error(hook: Callable[..., Any], exc: Exception) -> None:
    """Count an exception a hook raised (logging the first); never raises."""
    global _errors
    try:
        with _lock:
            _errors += 1
            first = _errors == 1
        where = getattr(hook, "__qualname__", None) or repr(hook)
        if first:
            log.warning("llmlens: internal error in %s; the app's call is unaffected, its telemetry is "
                        "incomplete (further errors are only counted: llmlens_sdk_internal_errors_total)",
                        where, exc_info=exc)
        else:
            log.debug("llmlens: internal error in %s: %r", where, exc)
    except Exception:  # noqa: BLE001, S110 - a broken logging setup must not raise into the app either
        pass


def internal_errors() -> int:
    """How many times an instrumentation hook raised in this process."""
    return _errors
