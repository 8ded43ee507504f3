"""Cost of an LLM call, from LiteLLM's public price list (MIT) shipped as `prices.json`.

    from llmlens.pricing import PriceBook
    book = PriceBook.default()
    book.cost("gpt-4o-mini-2024-07-18", "openai", input_tokens=1200, output_tokens=300,
              cached_input_tokens=1000)          # -> float USD, or None if the model is unknown

Token conventions follow OTel GenAI: `input_tokens` includes cached and cache-write tokens,
`reasoning_tokens` are part of `output_tokens`. Provenance and refresh: see SOURCE.md beside this
file, or run `python -m llmlens.pricing update litellm-<version>-*.whl`.

Override file (`PriceBook.load(overrides=...)`, or the path in $LLMLENS_PRICES_FILE for
`PriceBook.default()`): JSON, or TOML when the name ends in `.toml`, with one entry per model id
under `models`. Each entry replaces any bundled entry of the same id (case-insensitive) as a
whole, or adds a new id. Prices are USD per million tokens under these keys:

    input_per_million            (required)
    output_per_million           (required unless mode = "embedding")
    cache_read_per_million       (default: the input price)
    cache_creation_per_million   (default: the input price)
    reasoning_per_million        (default: the output price)
    <any of the above>_above_200k_tokens   (tier applied when the prompt exceeds 200k tokens)

plus optional `provider` (e.g. "openai") and `mode` (chat | completion | embedding | responses,
default chat). LiteLLM's per-token names (`input_cost_per_token`, ...) are accepted instead, so an
entry copied from LiteLLM's file works as is. Example, TOML:

    [models."my-finetune"]
    provider = "openai"
    input_per_million = 1.0
    output_per_million = 2.0

and the same in JSON: {"models": {"my-finetune": {"input_per_million": 1.0, "output_per_million": 2.0}}}
"""

from .catalog import PriceBook
from .model import ModelPrice, PriceTier
from .update import update_price_file

__all__ = ["ModelPrice", "PriceBook", "PriceTier", "update_price_file"]
