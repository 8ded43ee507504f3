"""OTLP AnyValue/KeyValue -> Python values, and the stored string form.

Stored form follows the OTel ClickHouse exporter: every attribute value is a string in a
Map; ints and doubles as their decimal text, bools as true/false, arrays and maps as JSON.

Truncation rule (documented in the README): at most MAX_ATTRIBUTES attributes per span,
log record or event (the rest are dropped and counted in `llmlens.dropped_attributes`);
each stored value at most MAX_VALUE_CHARS characters (longer ones are cut and end with
"…[truncated]"); AnyValues nested deeper than MAX_DEPTH levels are stored as "…".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

MAX_ATTRIBUTES = 1024
MAX_VALUE_CHARS = 65_536
MAX_DEPTH = 16
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


def key_values(items: Iterable[Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """KeyValues -> (typed dict for normalisation, stored string dict), capped."""
    typed: dict[str, Any] = {}
    stored: dict[str, str] = {}
    dropped = 0
    for kv in items:
        if len(typed) >= MAX_ATTRIBUTES:
            dropped += 1
            continue
        value = any_value(kv.value)
        typed[kv.key] = value
        stored[kv.key] = value if type(value) is str and len(value) <= MAX_VALUE_CHARS else stored_string(value)
    if dropped:
        stored[DROPPED_KEY] = str(dropped)
    return typed, stored
