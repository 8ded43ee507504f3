"""How the normaliser prices a call and masks PII, built once from settings.

Injected into the normaliser (not imported by it) so tests can pass their own, and so
ingest worker processes can build the same model from the same two settings. `mask` is None
unless `--mask-pii` is on; then normalise/masking.py applies it to every stored string.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmlens.semconv import LlmFacts

if TYPE_CHECKING:
    from llmlens.pii import Redactor

log = logging.getLogger("llmlens.normalise.cost")


@dataclass(frozen=True)
class CostModel:
    price: Callable[[LlmFacts], float | None]
    mask: Redactor | None = None


def build_cost_model(prices_file: str | None = None, mask_pii: bool = False) -> CostModel:
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
    return CostModel(price=price, mask=mask)
