"""Attributes the instrumentation built itself, put on an OTel SDK span without re-validating each.

`Span.set_attributes` sends every value through OTel's `_clean_attribute_value` (type checks,
sequences to tuples, length limits) and a second lock per value: with the span's start the
largest cost of an instrumented call. The values the openai instrumentation sets when a call
ends are already of the clean types (str, bool, int, float; tuples of str), so on the SDK's own
span, with no value-length limit and room under the count limit, they go into its attribute
dict directly, under the span's lock, as `set_attributes` would leave them (each value's type
is checked: one set lookup instead of OTel's chain of isinstance checks). Any other case (a
span of another SDK, a length limit, a dict that would overflow, an ended span) takes the
public `set_attributes`. The span stays the SDK's span: processors and exporters see it as usual.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.attributes import BoundedAttributes

_SCALARS = frozenset({str, bool, int, float})


def _clean(value: Any) -> bool:
    kind = type(value)
    return kind in _SCALARS or (kind is tuple and all(type(v) is str for v in value))


def set_clean_attributes(span: Any, attributes: dict[str, Any]) -> None:
    """`span.set_attributes(attributes)`, skipping OTel's per-value cleaning where it would change nothing."""
    bounded = getattr(span, "_attributes", None)
    lock = getattr(span, "_lock", None)
    if (type(bounded) is BoundedAttributes and lock is not None and bounded.max_value_len is None
            and not bounded._immutable  # noqa: SLF001 - see the module docstring
            and all(map(_clean, attributes.values()))):
        plain = bounded._dict  # noqa: SLF001
        maxlen = bounded.maxlen
        with lock:
            if span._end_time is None and (maxlen is None or len(plain) + len(attributes) <= maxlen):  # noqa: SLF001
                plain.update(attributes)
                return
    span.set_attributes(attributes)
