"""`with llmlens.context(user_id=..., session_id=..., **tags)`: who and what a piece of work is for.

The values travel as W3C baggage, so they reach every span started inside the block (see
`ContextAttributesProcessor`) and, through the httpx/requests/FastAPI instrumentations, every
span of other services the block calls over HTTP. Note: baggage is sent on outgoing HTTP
requests, so keep secrets out of it. Works (as plain baggage) before init() too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import baggage
from opentelemetry import context as otel_context

from llmlens import semconv

TAG_PREFIX = "llmlens.tag."
# context() keyword -> baggage key = span attribute name.
NAMED_KEYS = {
    "user_id": semconv.USER_ID,
    "session_id": semconv.SESSION_ID,
    "app": semconv.LLMLENS_APP,
    "department": semconv.LLMLENS_DEPARTMENT,
}
# Baggage key -> span attributes it becomes (a session is also the GenAI conversation).
BAGGAGE_ATTRIBUTES: Mapping[str, tuple[str, ...]] = {
    semconv.USER_ID: (semconv.USER_ID,),
    semconv.SESSION_ID: (semconv.SESSION_ID, semconv.CONVERSATION_ID),
    semconv.LLMLENS_APP: (semconv.LLMLENS_APP,),
    semconv.LLMLENS_DEPARTMENT: (semconv.LLMLENS_DEPARTMENT,),
}


@contextmanager
def context(
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    department: str | None = None,
    app: str | None = None,
    **tags: Any,
) -> Iterator[None]:
    """Put these values on every span inside the block, in this service and downstream ones."""
    ctx = otel_context.get_current()
    named = {"user_id": user_id, "session_id": session_id, "department": department, "app": app}
    for arg, value in named.items():
        if value is not None:
            ctx = baggage.set_baggage(NAMED_KEYS[arg], str(value), ctx)
    for key, value in tags.items():
        if value is not None:
            ctx = baggage.set_baggage(TAG_PREFIX + key, str(value), ctx)
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


def attributes_from_baggage(values: Mapping[str, object]) -> dict[str, str]:
    """Span attributes for the llmlens entries of a baggage mapping (other entries are ignored)."""
    out: dict[str, str] = {}
    for key, value in values.items():
        names = BAGGAGE_ATTRIBUTES.get(key)
        if names is not None:
            for name in names:
                out[name] = str(value)
        elif key.startswith(TAG_PREFIX):
            out[key] = str(value)
    return out


def current_app_department(default_app: str, default_department: str) -> tuple[str, str]:
    """App and department for metric labels: the innermost context() wins over init()."""
    values = baggage.get_all()
    if not values:
        return default_app, default_department
    return (str(values.get(semconv.LLMLENS_APP, default_app)),
            str(values.get(semconv.LLMLENS_DEPARTMENT, default_department)))
