"""Reading LiteLLM's `model_prices_and_context_window.json` and our trimmed copy of it.

Our file is LiteLLM's, cut down to token-priced entries of the modes we bill and to the fields we
use, wrapped with provenance:

    {"format": "llmlens-prices/1", "source": {...}, "models": {"<model id>": {<LiteLLM fields>}}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .model import INPUT, MODES, OUTPUT, PRICE_FIELD, ModelPrice, check_price

FORMAT = "llmlens-prices/1"
# Documentation and routing entries in LiteLLM's file, not models.
_NOT_MODELS = frozenset({"sample_spec", "fallback_generalizations"})


def read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read price file {path}: {exc.strerror or exc}") from exc
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"price file {path} is not valid JSON: {exc}") from exc


def is_ours(data: Any) -> bool:
    return isinstance(data, dict) and data.get("format") == FORMAT


def trim_litellm(data: Any, origin: str = "price file") -> dict[str, dict[str, Any]]:
    """Validate a LiteLLM-format mapping and return {model: trimmed entry} for the entries we bill.

    Every price field we use is checked in every entry (not only the kept ones), so a file with a
    broken shape fails loudly instead of silently pricing fewer models.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{origin}: expected a JSON object of model id -> entry, got {type(data).__name__}")
    models: dict[str, dict[str, Any]] = {}
    for model, entry in data.items():
        if model in _NOT_MODELS:
            continue
        if not isinstance(entry, dict):
            raise ValueError(f"{origin}: entry {model!r} must be an object, got {type(entry).__name__}")
        kept = {
            k: check_price(model, k, v) for k, v in entry.items() if PRICE_FIELD.match(k) and v is not None
        }
        mode = entry.get("mode")
        if mode not in MODES or INPUT not in kept:
            continue  # images, audio, rerank... or priced per second/character: not ours to bill
        if mode != "embedding" and OUTPUT not in kept:
            continue
        provider = entry.get("litellm_provider")
        models[model] = {
            **({"litellm_provider": provider} if isinstance(provider, str) else {}),
            "mode": mode,
            **kept,
        }
    if not models:
        raise ValueError(f"{origin}: no token-priced chat/completion/embedding/responses model found")
    return models


def parse_price_data(data: Any, origin: str) -> dict[str, ModelPrice]:
    """Accept either our trimmed format or LiteLLM's raw one."""
    if is_ours(data):
        raw = data.get("models")
        if not isinstance(raw, dict):
            raise ValueError(f"{origin}: 'models' must be an object")
    else:
        raw = trim_litellm(data, origin)
    prices: dict[str, ModelPrice] = {}
    for model, entry in raw.items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"{origin}: entry {model!r} must be an object")
        prices[model] = ModelPrice.from_entry(model, entry)
    return prices


def dump_ours(models: Mapping[str, Mapping[str, Any]], source: Mapping[str, Any]) -> str:
    """Serialise one model per line, sorted, so a refresh reads as a clean diff."""
    lines = [
        "{",
        f'"format": {json.dumps(FORMAT)},',
        f'"source": {json.dumps(dict(source), sort_keys=True)},',
        '"models": {',
    ]
    body = [
        f"{json.dumps(m)}: {json.dumps(dict(models[m]), sort_keys=True, separators=(',', ':'))}"
        for m in sorted(models)
    ]
    lines.append(",\n".join(body))
    lines += ["}", "}", ""]
    return "\n".join(lines)
