"""OTLP AnyValue/KeyValue -> Python values, and the stored string form.

Stored form follows the OTel ClickHouse exporter: every attribute value is a string in a
Map; ints and doubles as their decimal text, bools as true/false, arrays and maps as JSON.

Truncation rule (documented in the README): at most MAX_ATTRIBUTES attributes per span,
log record or event (the rest are dropped and counted in `llmlens.dropped_attributes`);
keys at most MAX_KEY_CHARS characters;
each stored value at most MAX_VALUE_CHARS characters (longer ones are cut and end with
"…[truncated]"); AnyValues nested deeper than MAX_DEPTH levels are stored as "…".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

MAX_ATTRIBUTES = 1024
MAX_VALUE_CHARS = 65_536
MAX_DEPTH = 16
MAX_KEY_CHARS = 1024
TRUNCATED = "…[truncated]"
DROPPED_KEY = "llmlens.dropped_attributes"


def any_value(value: Any, depth: int = 0) -> Any:
    """An OTLP AnyValue as a plain Python value."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if depth >= MAX_DEPTH:
        return "…"
    if kind == "array_value":
        return [any_value(v, depth + 1) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value, depth + 1) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return None


def stored_string(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = repr(value)
    elif value is None:
        text = ""
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - len(TRUNCATED)] + TRUNCATED
    return text


def key_values(items: Sequence[Any]) -> dict[str, str]:
    """KeyValues -> {key: stored string}, capped by the truncation rule.

    The hot loop of ingest (~30 attributes a span): strings, the common case, take the
    shortest path. The normaliser reads facts from these strings too (semconv accepts
    "123", "true" and JSON text), so one dict serves both.
    """
    stored: dict[str, str] = {}
    dropped = len(items) - MAX_ATTRIBUTES
    if dropped > 0:
        items = items[:MAX_ATTRIBUTES]
    for kv in items:
        value = kv.value
        text = value.string_value  # "" unless set: a non-empty string needs no WhichOneof
        if text:
            stored[kv.key] = text
            continue
        kind = value.WhichOneof("value")  # numbers and booleans next: LLM spans carry many
        if kind == "int_value":
            stored[kv.key] = str(value.int_value)
        elif kind == "double_value":
            stored[kv.key] = repr(value.double_value)
        elif kind == "bool_value":
            stored[kv.key] = "true" if value.bool_value else "false"
        else:
            stored[kv.key] = stored_string(any_value(value))
    stored = cap_lengths(stored)
    if dropped > 0:
        stored[DROPPED_KEY] = str(dropped)
    return stored


def cap_lengths(stored: dict[str, str]) -> dict[str, str]:
    """Keys and values cut to their caps; checked once for the whole dict (C loops) instead of
    once an attribute. A key cut to equal another key keeps the later value."""
    if stored and max(map(len, stored)) > MAX_KEY_CHARS:
        stored = {key[:MAX_KEY_CHARS]: text for key, text in stored.items()}
    if stored and max(map(len, stored.values())) > MAX_VALUE_CHARS:
        stored = {key: text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - len(TRUNCATED)] + TRUNCATED
                  for key, text in stored.items()}
    return stored
