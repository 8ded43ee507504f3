"""User price overrides: a small hand-written JSON or TOML file (format in the package docstring)."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .model import CACHE_CREATION, CACHE_READ, INPUT, OUTPUT, PRICE_FIELD, REASONING, ModelPrice, check_price

# Human-friendly names, in USD per million tokens, for the LiteLLM per-token fields.
_PER_MILLION = {
    "input": INPUT,
    "output": OUTPUT,
    "cache_read": CACHE_READ,
    "cache_creation": CACHE_CREATION,
    "reasoning": REASONING,
}
_PER_MILLION_KEY = re.compile(r"^([a-z_]+?)_per_million(_above_\d+k?_tokens)?$")


def load_overrides(source: str | Path | Mapping[str, Any]) -> dict[str, ModelPrice]:
    """Parse an override file (or an already-parsed mapping) into prices; ValueError on any mistake."""
    if isinstance(source, Mapping):
        data: Any = source
        origin = "overrides"
    else:
        path = Path(source)
        origin = f"override file {path}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read {origin}: {exc.strerror or exc}") from exc
        try:
            data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(
                f"{origin} is not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {exc}"
            ) from exc
    if not isinstance(data, Mapping):
        raise ValueError(f"{origin}: expected an object/table at the top level")
    # `{"models": {...}}` is the documented shape; a bare LiteLLM-style map is accepted too.
    models = data["models"] if set(data) == {"models"} else data
    if not isinstance(models, Mapping):
        raise ValueError(f"{origin}: 'models' must be an object/table of model id -> prices")
    return {str(model): _entry(str(model), entry, origin) for model, entry in models.items()}


def _entry(model: str, entry: Any, origin: str) -> ModelPrice:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{origin}: model {model!r} must be an object/table of prices")
    if not model.strip():
        raise ValueError(f"{origin}: empty model id")
    fields: dict[str, Any] = {}
    for key, value in entry.items():
        if key in ("provider", "litellm_provider"):
            fields["litellm_provider"] = value
        elif key == "mode":
            fields["mode"] = value
        elif m := _PER_MILLION_KEY.match(key):
            name, tier = m.groups()
            if name not in _PER_MILLION:
                known = ", ".join(f"{n}_per_million" for n in _PER_MILLION)
                raise ValueError(f"{origin}: model {model!r}: unknown price {key!r} (known: {known})")
            target = _PER_MILLION[name] + (tier or "")
            if target in fields:
                raise ValueError(
                    f"{origin}: model {model!r}: {key!r} given twice (per token and per million)"
                )
            fields[target] = check_price(model, key, value) / 1_000_000
        elif PRICE_FIELD.match(key):
            if key in fields:
                raise ValueError(
                    f"{origin}: model {model!r}: {key!r} given twice (per token and per million)"
                )
            fields[key] = check_price(model, key, value)
        # Other keys (LiteLLM's supports_*, max_tokens, batch prices...) are ignored.
    if fields.get("mode", "chat") not in ("chat", "completion", "embedding", "responses"):
        raise ValueError(f"{origin}: model {model!r}: mode must be chat, completion, embedding or responses")
    try:
        return ModelPrice.from_entry(model, fields)
    except ValueError as exc:
        raise ValueError(f"{origin}: {exc}") from None
