"""One model's prices and the arithmetic that turns token counts into USD."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The per-token fields we keep, named as LiteLLM names them (USD per token).
INPUT = "input_cost_per_token"
OUTPUT = "output_cost_per_token"
CACHE_READ = "cache_read_input_token_cost"
CACHE_CREATION = "cache_creation_input_token_cost"
REASONING = "output_cost_per_reasoning_token"
BASE_FIELDS = (INPUT, OUTPUT, CACHE_READ, CACHE_CREATION, REASONING)
TIERED_FIELDS = (INPUT, OUTPUT, CACHE_READ, CACHE_CREATION)

# `input_cost_per_token_above_200k_tokens`; LiteLLM also allows a bare count (`_above_128000_tokens`).
# Service-tier variants (`_priority`, `_batches`, `_flex`) and TTL variants (`_above_1hr`) do not match.
PRICE_FIELD = re.compile(rf"^({'|'.join(BASE_FIELDS)})(?:_above_(\d+)(k?)_tokens)?$")

MODES = frozenset({"chat", "completion", "embedding", "responses"})


def check_price(model: str, field: str, value: Any) -> float:
    """Return `value` as a float, or raise ValueError naming the model and field."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"model {model!r}: {field} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"model {model!r}: {field} must be a finite number >= 0, got {value!r}")
    return float(value)


def _count(name: str, value: Any) -> float:
    # Token counts arrive from span attributes; None means "not reported", i.e. zero.
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number or None, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class PriceTier:
    """Prices that replace the base ones once the prompt exceeds `above_tokens` (None = keep base)."""

    above_tokens: int
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    cache_read_input_token_cost: float | None = None
    cache_creation_input_token_cost: float | None = None


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per token for one model id, as in the price file."""

    model: str
    provider: str | None
    mode: str
    input_cost_per_token: float
    output_cost_per_token: float | None = None
    cache_read_input_token_cost: float | None = None
    cache_creation_input_token_cost: float | None = None
    output_cost_per_reasoning_token: float | None = None
    tiers: tuple[PriceTier, ...] = ()  # ascending by above_tokens

    @classmethod
    def from_entry(cls, model: str, entry: Mapping[str, Any]) -> ModelPrice:
        """Build from a price-file entry (LiteLLM field names); raises ValueError on bad values."""
        base: dict[str, float] = {}
        tiers: dict[int, dict[str, float]] = {}
        for key, value in entry.items():
            m = PRICE_FIELD.match(key)
            if m is None or value is None:
                continue
            price = check_price(model, key, value)
            field, count, k = m.groups()
            if count is None:
                base[field] = price
            elif field in TIERED_FIELDS:
                threshold = int(count) * (1000 if k else 1)  # LiteLLM reads "128k" as 128,000
                tiers.setdefault(threshold, {})[field] = price
        mode = entry.get("mode") or "chat"
        if INPUT not in base:
            raise ValueError(f"model {model!r}: no {INPUT}")
        if mode != "embedding" and OUTPUT not in base:
            raise ValueError(f"model {model!r}: no {OUTPUT} (required unless mode is 'embedding')")
        provider = entry.get("litellm_provider")
        return cls(
            model=model,
            provider=str(provider) if provider is not None else None,
            mode=str(mode),
            tiers=tuple(PriceTier(t, **tiers[t]) for t in sorted(tiers)),
            **base,
        )

    def to_entry(self) -> dict[str, Any]:
        """The price-file entry for this model (inverse of from_entry)."""
        out: dict[str, Any] = {"litellm_provider": self.provider, "mode": self.mode}
        for field in BASE_FIELDS:
            if (value := getattr(self, field)) is not None:
                out[field] = value
        for tier in self.tiers:
            label = (
                f"{tier.above_tokens // 1000}k" if tier.above_tokens % 1000 == 0 else str(tier.above_tokens)
            )
            for field in TIERED_FIELDS:
                if (value := getattr(tier, field)) is not None:
                    out[f"{field}_above_{label}_tokens"] = value
        if out["litellm_provider"] is None:
            del out["litellm_provider"]
        return out

    def cost(
        self,
        *,
        input_tokens: Any = 0,
        output_tokens: Any = 0,
        cached_input_tokens: Any = 0,
        reasoning_tokens: Any = 0,
        cache_creation_input_tokens: Any = 0,
    ) -> float:
        """USD for one call. See `PriceBook.cost` for the token conventions."""
        inp = _count("input_tokens", input_tokens)
        out = _count("output_tokens", output_tokens)
        cached = _count("cached_input_tokens", cached_input_tokens)
        reasoning = _count("reasoning_tokens", reasoning_tokens)
        creation = _count("cache_creation_input_tokens", cache_creation_input_tokens)

        in_rate = self.input_cost_per_token
        out_rate = self.output_cost_per_token or 0.0
        read_rate = self.cache_read_input_token_cost
        write_rate = self.cache_creation_input_token_cost
        # As LiteLLM: every tier the prompt strictly exceeds applies in ascending order, so the
        # highest crossed tier wins field by field and missing tier fields keep the lower rate.
        for tier in self.tiers:
            if inp <= tier.above_tokens:
                break
            in_rate = tier.input_cost_per_token if tier.input_cost_per_token is not None else in_rate
            out_rate = tier.output_cost_per_token if tier.output_cost_per_token is not None else out_rate
            if tier.cache_read_input_token_cost is not None:
                read_rate = tier.cache_read_input_token_cost
            if tier.cache_creation_input_token_cost is not None:
                write_rate = tier.cache_creation_input_token_cost

        if self.mode == "embedding":
            return inp * in_rate

        # OTel: input_tokens includes cached and cache-write tokens. If a span reports them on top
        # (Anthropic's own convention), the uncached remainder clamps to 0 rather than going negative.
        uncached = max(inp - cached - creation, 0.0)
        total = uncached * in_rate
        total += cached * (read_rate if read_rate is not None else in_rate)
        total += creation * (write_rate if write_rate is not None else in_rate)
        # Reasoning tokens are part of output_tokens; a dedicated rate re-prices just that share.
        reasoning = min(reasoning, out)
        reasoning_rate = self.output_cost_per_reasoning_token
        if reasoning_rate is None:
            total += out * out_rate
        else:
            total += (out - reasoning) * out_rate + reasoning * reasoning_rate
        return total
