"""How the normaliser prices a call, masks PII and bounds times, built once from settings.

Injected into the normaliser (not imported by it) so tests can pass their own, and so
ingest worker processes can build the same model from the same settings. `mask` is None
unless `--mask-pii` is on; then normalise/masking.py applies it to every stored string.
`window` (time_window.py) is the range of times a record may carry; None accepts any time.

A call's usage is checked here too: a negative or absurd reported cost, or a token count no call
could use (an instrumentation's bug, or 2**63 sent on purpose), would be summed into every
total; such a span is rejected whole, with the reason, never clamped into a plausible lie.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmlens.semconv import LlmFacts
from llmlens.server.normalise.time_window import TimeWindow

if TYPE_CHECKING:
    from llmlens.pii import Redactor

log = logging.getLogger("llmlens.normalise.cost")


# Far above any real call (the largest context windows hold ~10M tokens; the dearest models cost
# ~$100 per million output tokens), far below what overflows a sum over billions of calls.
MAX_TOKENS_PER_CALL = 10**9
MAX_COST_USD_PER_CALL = 10_000.0
_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_creation_input_tokens",
                 "reasoning_tokens")


@dataclass(frozen=True)
class CostModel:
    price: Callable[[LlmFacts], float | None]
    mask: Redactor | None = None
    window: TimeWindow | None = None


def implausible_usage(facts: LlmFacts) -> str:
    """Why a call's reported usage cannot be stored ('' when it can)."""
    for name in _TOKEN_FIELDS:
        tokens = getattr(facts, name)
        if tokens > MAX_TOKENS_PER_CALL:
            return f"{name} {tokens} is more than one call can use (at most {MAX_TOKENS_PER_CALL})"
    usd = facts.cost_usd
    if usd is not None and not 0 <= usd <= MAX_COST_USD_PER_CALL:
        return f"reported cost {usd:g} USD is outside 0..{MAX_COST_USD_PER_CALL:g} USD for one call"
    return ""


def build_cost_model(prices_file: str | None = None, mask_pii: bool = False,
                     window: TimeWindow | None = TimeWindow()) -> CostModel:  # noqa: B008 -- frozen, shared safely
    from llmlens.pricing import PriceBook

    book = PriceBook.load(overrides=prices_file) if prices_file else PriceBook.default()

    def price(facts: LlmFacts) -> float | None:
        # The response model names the snapshot that was billed; fall back to the requested one.
        for model in dict.fromkeys(m for m in (facts.response_model, facts.request_model) if m):
            try:
                usd = book.cost(model, facts.provider or None, input_tokens=facts.input_tokens,
                                output_tokens=facts.output_tokens, cached_input_tokens=facts.cached_input_tokens,
                                reasoning_tokens=facts.reasoning_tokens,
                                cache_creation_input_tokens=facts.cache_creation_input_tokens)
            except ValueError as exc:  # inconsistent token counts from an instrumentor: leave unpriced
                log.debug("cannot price %s: %s", model, exc)
                return None
            if usd is not None:
                return usd
        return None

    mask = None
    if mask_pii:
        from llmlens.pii import Redactor

        mask = Redactor(mode="mask")
    return CostModel(price=price, mask=mask, window=window)
