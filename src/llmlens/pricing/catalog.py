"""PriceBook: the loaded price list, forgiving model-id lookup, and cost()."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from .litellm import parse_price_data, read_json
from .model import ModelPrice
from .overrides import load_overrides

BUNDLED_FILE = Path(__file__).with_name("prices.json")
ENV_OVERRIDES = "LLMLENS_PRICES_FILE"

# OTel `gen_ai.provider.name` (and legacy `gen_ai.system`) -> key prefixes used in LiteLLM's file,
# most specific first. Unknown providers are tried verbatim, so LiteLLM's own names also work.
_PROVIDER_PREFIXES: dict[str, tuple[str, ...]] = {
    "openai": ("openai",),
    "azure.ai.openai": ("azure",),
    "azure.ai.inference": ("azure_ai",),
    "az.ai.openai": ("azure",),
    "az.ai.inference": ("azure_ai",),
    "azure": ("azure",),
    "aws.bedrock": ("bedrock", "bedrock/converse"),
    "gcp.vertex_ai": ("vertex_ai",),
    "gcp.gemini": ("gemini",),
    "gcp.gen_ai": ("gemini", "vertex_ai"),
    "ibm.watsonx.ai": ("watsonx",),
    "mistral_ai": ("mistral",),
    "x_ai": ("xai",),
    "moonshot_ai": ("moonshot",),
    "cohere": ("cohere", "cohere_chat"),
}

# Snapshot/version suffixes that name the same priced model: `-2024-07-18`, `-20250929`,
# Vertex `@20250929`/`@default`, Bedrock `-v1:0`. Never strips anything that changes the family.
_SUFFIXES = re.compile(r"(?:-20\d\d-\d\d-\d\d|-20\d{6}|@[\w.-]+|-v\d+:\d+)$")
# Bedrock cross-region inference profiles (`us.`, `eu.`, `apac.`, `global.`...) bill like the base
# id, and Bedrock's `anthropic.claude-*` bills at Anthropic's list price.
_REGION = re.compile(r"^(?:(?:[a-z]{2}|apac|global|us-gov)\.(?=[a-z]+\.)|anthropic\.(?=claude-))")

_MAX_MODEL_LEN = 256  # longer strings are not model ids; don't pay to parse or cache them
_MEMO_LIMIT = 8192


class PriceBook:
    """An immutable set of model prices. Reads are thread-safe; lookups are memoised."""

    _default_lock: ClassVar[threading.Lock] = threading.Lock()
    _defaults: ClassVar[dict[str | None, PriceBook]] = {}

    def __init__(self, prices: Mapping[str, ModelPrice]) -> None:
        self._prices = dict(prices)
        # Case-insensitive index; on a case-only clash the first id wins (none exist in LiteLLM today).
        self._index: dict[str, ModelPrice] = {}
        for model, price in self._prices.items():
            self._index.setdefault(model.lower(), price)
        self._memo: dict[tuple[str, str | None], ModelPrice | None] = {}

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        overrides: str | Path | Mapping[str, Any] | None = None,
    ) -> PriceBook:
        """Load a price file (ours or LiteLLM's raw format; default: the bundled one) plus overrides.

        Override entries replace bundled entries of the same id wholesale (no field merging) and
        add new ids. Raises ValueError with the file and model named on any bad input.
        """
        file = Path(path) if path is not None else BUNDLED_FILE
        prices = parse_price_data(read_json(file), f"price file {file}")
        if overrides is not None:
            override_prices = load_overrides(overrides)
            # Replace case-insensitively, so "GPT-4o" in an override wins over bundled "gpt-4o".
            lowered = {m.lower() for m in override_prices}
            prices = {m: p for m, p in prices.items() if m.lower() not in lowered}
            prices.update(override_prices)
        return cls(prices)

    @classmethod
    def default(cls) -> PriceBook:
        """The bundled prices plus the overrides named by $LLMLENS_PRICES_FILE, loaded once."""
        overrides = os.environ.get(ENV_OVERRIDES) or None
        book = cls._defaults.get(overrides)
        if book is None:
            with cls._default_lock:
                book = cls._defaults.get(overrides)
                if book is None:
                    book = cls.load(overrides=overrides)
                    cls._defaults[overrides] = book
        return book

    # -- reading --------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._prices)

    def __iter__(self) -> Iterator[str]:
        return iter(self._prices)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and model.lower() in self._index

    def lookup(self, model: str, provider: str | None = None) -> ModelPrice | None:
        """Price for a model id as spans carry it, or None when unknown.

        Tries, in order and only ever as whole-id matches (so `gpt-4o` never gets `gpt-4o-mini`):
        the id with the provider's LiteLLM prefix (`azure/gpt-4o` for `azure.ai.openai`), the id
        itself, the id with leading `provider/` segments removed, then the same with date/version
        suffixes and Bedrock region prefixes removed. Case-insensitive. `provider` is a preference,
        not a filter: an id priced only under another provider still resolves.
        """
        key = (model, provider)
        try:
            return self._memo[key]
        except KeyError:
            pass
        except TypeError:  # unhashable junk from a span attribute
            return None
        if not isinstance(model, str) or not (0 < len(model) <= _MAX_MODEL_LEN):
            return None
        found = self._resolve(model, provider if isinstance(provider, str) else None)
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()  # bounded: span attributes are attacker-controlled strings
        self._memo[key] = found
        return found

    def cost(
        self,
        model: str,
        provider: str | None = None,
        *,
        input_tokens: Any = 0,
        output_tokens: Any = 0,
        cached_input_tokens: Any = 0,
        reasoning_tokens: Any = 0,
        cache_creation_input_tokens: Any = 0,
    ) -> float | None:
        """USD for one call, or None when the model is not priced (never a silent 0.0).

        Conventions (OTel GenAI): `input_tokens` includes `cached_input_tokens` and
        `cache_creation_input_tokens`; `reasoning_tokens` are part of `output_tokens`. Token counts
        may be None (= 0); negative or non-numeric counts raise ValueError.
        """
        price = self.lookup(model, provider)
        if price is None:
            return None
        return price.cost(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached_input_tokens,
            reasoning_tokens=reasoning_tokens,
            cache_creation_input_tokens=cache_creation_input_tokens,
        )

    # -- lookup internals -----------------------------------------------------------------------

    def _resolve(self, model: str, provider: str | None) -> ModelPrice | None:
        name = model.strip().lower()
        if not name:
            return None
        prov = provider.strip().lower() if provider else ""
        prefixes = _PROVIDER_PREFIXES.get(prov, (prov,) if prov else ())
        for candidate in _candidates(name):
            for prefix in prefixes:
                if (hit := self._index.get(f"{prefix}/{candidate}")) is not None:
                    return hit
            if (hit := self._index.get(candidate)) is not None:
                return hit
        return None


def _candidates(name: str) -> Iterator[str]:
    """Ids to try for `name`, most specific first; each is a whole id, never a prefix match."""
    # `ft:gpt-4o-mini-2024-07-18:org:name:id` -> LiteLLM's `ft:gpt-4o-mini-2024-07-18`; a fine-tuned
    # model is priced differently from its base, so the base id is deliberately not tried.
    if name.startswith("ft:"):
        yield ":".join(name.split(":", 2)[:2])
        return
    stripped = [name]
    while "/" in stripped[-1]:
        stripped.append(stripped[-1].split("/", 1)[1])
    yield from stripped
    seen = set(stripped)
    for base in stripped:
        current = base
        while True:
            shorter = _REGION.sub("", _SUFFIXES.sub("", current), count=1)
            if shorter == current or not shorter:
                break
            current = shorter
            if current not in seen:
                seen.add(current)
                yield current
