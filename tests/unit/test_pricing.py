"""Tests for llmlens.pricing: bundled data, cost arithmetic, lookup, overrides, refresh."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from llmlens.pricing import ModelPrice, PriceBook, update_price_file
from llmlens.pricing.catalog import BUNDLED_FILE

M = 1_000_000


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook.load()


@pytest.fixture(scope="module")
def bundled() -> dict:
    return json.loads(BUNDLED_FILE.read_text())


def _book(models: dict) -> PriceBook:
    return PriceBook({m: ModelPrice.from_entry(m, {"mode": "chat", **e}) for m, e in models.items()})


# -- bundled data -----------------------------------------------------------------------------


def test_bundled_file_is_small_and_sourced(bundled: dict) -> None:
    assert BUNDLED_FILE.stat().st_size < 1_000_000
    assert bundled["format"] == "llmlens-prices/1"
    assert bundled["source"]["license"] == "MIT"
    assert bundled["source"]["litellm_version"] != "unknown"
    assert len(bundled["models"]) > 1000
    assert {e["mode"] for e in bundled["models"].values()} <= {"chat", "completion", "embedding", "responses"}


def test_gpt_4o_mini_matches_file(book: PriceBook, bundled: dict) -> None:
    entry = bundled["models"]["gpt-4o-mini"]
    price = book.lookup("gpt-4o-mini")
    assert price is not None
    assert price.input_cost_per_token == entry["input_cost_per_token"]
    assert price.output_cost_per_token == entry["output_cost_per_token"]
    usd = book.cost("gpt-4o-mini", input_tokens=1000, output_tokens=500)
    assert usd == pytest.approx(1000 * entry["input_cost_per_token"] + 500 * entry["output_cost_per_token"])
    assert usd > 0


def test_default_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMLENS_PRICES_FILE", raising=False)
    assert PriceBook.default() is PriceBook.default()
    assert PriceBook.default().lookup("gpt-4o-mini") is not None


def test_default_reads_env_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    f = tmp_path / "prices.toml"
    f.write_text('[models."env-model"]\ninput_per_million = 1.0\noutput_per_million = 2.0\n')
    monkeypatch.setenv("LLMLENS_PRICES_FILE", str(f))
    assert PriceBook.default().cost("env-model", input_tokens=M, output_tokens=M) == pytest.approx(3.0)


# -- arithmetic -------------------------------------------------------------------------------


def test_cached_tokens_are_part_of_input_and_billed_at_cache_rate() -> None:
    b = _book(
        {
            "m": {
                "input_cost_per_token": 2e-6,
                "output_cost_per_token": 8e-6,
                "cache_read_input_token_cost": 0.5e-6,
            }
        }
    )
    usd = b.cost("m", input_tokens=1000, cached_input_tokens=400, output_tokens=100)
    assert usd == pytest.approx(600 * 2e-6 + 400 * 0.5e-6 + 100 * 8e-6)


def test_cache_rates_fall_back_to_input_rate() -> None:
    b = _book({"m": {"input_cost_per_token": 2e-6, "output_cost_per_token": 8e-6}})
    assert b.cost(
        "m", input_tokens=1000, cached_input_tokens=400, cache_creation_input_tokens=100
    ) == pytest.approx(1000 * 2e-6)


def test_cache_creation_billed_at_its_rate() -> None:
    b = _book(
        {
            "m": {
                "input_cost_per_token": 3e-6,
                "output_cost_per_token": 15e-6,
                "cache_read_input_token_cost": 0.3e-6,
                "cache_creation_input_token_cost": 3.75e-6,
            }
        }
    )
    usd = b.cost("m", input_tokens=1000, cached_input_tokens=500, cache_creation_input_tokens=200)
    assert usd == pytest.approx(300 * 3e-6 + 500 * 0.3e-6 + 200 * 3.75e-6)


def test_cached_exceeding_input_does_not_go_negative() -> None:
    b = _book(
        {
            "m": {
                "input_cost_per_token": 2e-6,
                "output_cost_per_token": 8e-6,
                "cache_read_input_token_cost": 1e-6,
            }
        }
    )
    assert b.cost("m", input_tokens=10, cached_input_tokens=100) == pytest.approx(100 * 1e-6)


def test_reasoning_tokens_are_subset_of_output() -> None:
    plain = _book({"m": {"input_cost_per_token": 1e-6, "output_cost_per_token": 4e-6}})
    assert plain.cost("m", output_tokens=1000, reasoning_tokens=600) == pytest.approx(1000 * 4e-6)
    priced = _book(
        {
            "m": {
                "input_cost_per_token": 1e-6,
                "output_cost_per_token": 4e-6,
                "output_cost_per_reasoning_token": 10e-6,
            }
        }
    )
    assert priced.cost("m", output_tokens=1000, reasoning_tokens=600) == pytest.approx(
        400 * 4e-6 + 600 * 10e-6
    )


def test_reasoning_rate_from_bundled_data(book: PriceBook, bundled: dict) -> None:
    e = bundled["models"]["dashscope/qwen-turbo"]
    assert e["output_cost_per_reasoning_token"] != e["output_cost_per_token"]
    usd = book.cost("qwen-turbo", "dashscope", output_tokens=100, reasoning_tokens=30)
    assert usd == pytest.approx(70 * e["output_cost_per_token"] + 30 * e["output_cost_per_reasoning_token"])


def test_tiered_prices_apply_above_threshold(book: PriceBook, bundled: dict) -> None:
    e = bundled["models"]["gemini-2.5-pro"]
    below = book.cost("gemini-2.5-pro", input_tokens=200_000, output_tokens=10)
    above = book.cost("gemini-2.5-pro", input_tokens=200_001, output_tokens=10)
    assert below == pytest.approx(200_000 * e["input_cost_per_token"] + 10 * e["output_cost_per_token"])
    assert above == pytest.approx(
        200_001 * e["input_cost_per_token_above_200k_tokens"]
        + 10 * e["output_cost_per_token_above_200k_tokens"]
    )


def test_highest_crossed_tier_wins_field_by_field() -> None:
    b = _book(
        {
            "m": {
                "input_cost_per_token": 1e-6,
                "output_cost_per_token": 2e-6,
                "input_cost_per_token_above_32k_tokens": 3e-6,
                "output_cost_per_token_above_32k_tokens": 4e-6,
                "input_cost_per_token_above_256k_tokens": 5e-6,
            }
        }
    )
    assert b.cost("m", input_tokens=100_000, output_tokens=1) == pytest.approx(100_000 * 3e-6 + 4e-6)
    # 256k tier has no output price: keep the 32k tier's.
    assert b.cost("m", input_tokens=300_000, output_tokens=1) == pytest.approx(300_000 * 5e-6 + 4e-6)


def test_embeddings_bill_input_only(book: PriceBook, bundled: dict) -> None:
    rate = bundled["models"]["text-embedding-3-small"]["input_cost_per_token"]
    assert book.cost("text-embedding-3-small", input_tokens=1000, output_tokens=999) == pytest.approx(
        1000 * rate
    )


def test_zero_tokens_is_zero_not_none(book: PriceBook) -> None:
    assert book.cost("gpt-4o-mini") == 0.0


def test_none_tokens_count_as_zero(book: PriceBook) -> None:
    assert book.cost("gpt-4o-mini", input_tokens=None, output_tokens=None, cached_input_tokens=None) == 0.0


@pytest.mark.parametrize("bad", [-1, "10", float("nan"), True, [1]])
def test_bad_token_counts_raise(book: PriceBook, bad: object) -> None:
    with pytest.raises(ValueError, match="input_tokens"):
        book.cost("gpt-4o-mini", input_tokens=bad)


# -- lookup -----------------------------------------------------------------------------------


def test_unknown_model_is_none(book: PriceBook) -> None:
    assert book.lookup("definitely-not-a-model") is None
    assert book.cost("definitely-not-a-model", input_tokens=10, output_tokens=10) is None


@pytest.mark.parametrize(
    ("model", "provider", "expected"),
    [
        ("gpt-4o-mini", None, "gpt-4o-mini"),
        ("openai/gpt-4o-mini", None, "gpt-4o-mini"),
        ("GPT-4o-Mini", "OpenAI", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "openai", "gpt-4o-mini-2024-07-18"),
        ("gpt-4o-mini-2031-01-01", "openai", "gpt-4o-mini"),
        ("openai/gpt-4o-mini-2031-01-01", None, "gpt-4o-mini"),
        ("gpt-4o", "azure.ai.openai", "azure/gpt-4o"),
        ("azure/gpt-4o", None, "azure/gpt-4o"),
        ("gpt-4o", "openai", "gpt-4o"),
        ("gemini-2.5-pro", "gcp.gemini", "gemini/gemini-2.5-pro"),
        ("gemini-2.5-pro", "gcp.vertex_ai", "gemini-2.5-pro"),
        ("claude-sonnet-4-5-20250929", "anthropic", "claude-sonnet-4-5-20250929"),
        ("claude-sonnet-4-5-20270101", "anthropic", "claude-sonnet-4-5"),
        (
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "aws.bedrock",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "openai", "ft:gpt-4o-mini-2024-07-18"),
    ],
)
def test_forgiving_lookup(book: PriceBook, model: str, provider: str | None, expected: str) -> None:
    price = book.lookup(model, provider)
    assert price is not None, model
    assert price.model == expected


def test_never_matches_a_different_model(book: PriceBook) -> None:
    assert book.lookup("gpt-4o").model == "gpt-4o"
    assert book.lookup("gpt-4o").input_cost_per_token != book.lookup("gpt-4o-mini").input_cost_per_token
    assert book.lookup("gpt-4o-2031-01-01").model == "gpt-4o"
    for near_miss in [
        "gpt-4",
        "gpt-4o-min",
        "gpt-4o-mini-foo",
        "gpt",
        "mini",
        "4o-mini",
        "ft:gpt-4o-mini-2031-01-01:x",
    ]:
        price = book.lookup(near_miss)
        assert price is None or price.model.lower() == near_miss.lower(), near_miss


def test_lookup_is_memoised(book: PriceBook) -> None:
    first = book.lookup("gpt-4o-mini-2031-01-01", "openai")
    assert book.lookup("gpt-4o-mini-2031-01-01", "openai") is first
    assert ("gpt-4o-mini-2031-01-01", "openai") in book._memo


@pytest.mark.parametrize(
    "model", ["", "   ", "x" * 10_000, "/", "///", "@", "-2024-01-01", None, 42, ["gpt-4o"]]
)
def test_hostile_model_names(book: PriceBook, model: object) -> None:
    assert book.lookup(model) is None  # type: ignore[arg-type]
    assert book.cost(model, input_tokens=1) is None  # type: ignore[arg-type]


def test_memo_is_bounded() -> None:
    fresh = _book({"m": {"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6}})
    for i in range(20_000):
        fresh.lookup(f"junk-{i}")
    assert len(fresh._memo) <= 8192


# -- overrides --------------------------------------------------------------------------------


def test_json_override_adds_and_replaces(tmp_path: Path) -> None:
    f = tmp_path / "o.json"
    f.write_text(
        json.dumps(
            {
                "models": {
                    "my-model": {"input_per_million": 1.0, "output_per_million": 2.0},
                    "GPT-4o-mini": {
                        "provider": "openai",
                        "input_cost_per_token": 9e-6,
                        "output_cost_per_token": 9e-6,
                    },
                }
            }
        )
    )
    b = PriceBook.load(overrides=f)
    assert b.cost("my-model", input_tokens=M, output_tokens=M) == pytest.approx(3.0)
    assert b.cost("gpt-4o-mini", input_tokens=M) == pytest.approx(9.0)
    assert b.lookup("gpt-4o-mini-2031-01-01").input_cost_per_token == 9e-6
    assert b.lookup("gpt-4o") is not None  # untouched bundled entries remain


def test_toml_override_with_cache_tier_and_embedding(tmp_path: Path) -> None:
    f = tmp_path / "o.toml"
    f.write_text(
        """
[models."acme/llm"]
provider = "acme"
input_per_million = 2.0
output_per_million = 6.0
cache_read_per_million = 0.5
input_per_million_above_100k_tokens = 4.0

[models."acme-embed"]
mode = "embedding"
input_per_million = 0.1
"""
    )
    b = PriceBook.load(overrides=f)
    assert b.cost("acme/llm", input_tokens=M, cached_input_tokens=M // 2) == pytest.approx(4.0 / 2 + 0.5 / 2)
    assert b.cost("llm", "acme", input_tokens=10) == pytest.approx(2e-5)
    assert b.cost("acme-embed", input_tokens=M, output_tokens=M) == pytest.approx(0.1)


def test_override_as_mapping_and_flat_litellm_shape() -> None:
    b = PriceBook.load(
        overrides={
            "x": {"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6, "supports_vision": True}
        }
    )
    assert b.cost("x", input_tokens=1, output_tokens=1) == pytest.approx(2e-6)


@pytest.mark.parametrize(
    ("content", "suffix", "match"),
    [
        ("{not json", ".json", "not valid JSON"),
        ("[models\nbroken", ".toml", "not valid TOML"),
        ('["a"]', ".json", "top level"),
        ('{"models": {"m": 5}}', ".json", "must be an object"),
        ('{"models": {"m": {"input_per_million": -1, "output_per_million": 1}}}', ".json", ">= 0"),
        (
            '{"models": {"m": {"input_per_million": "1", "output_per_million": 1}}}',
            ".json",
            "must be a number",
        ),
        ('{"models": {"m": {"inptu_per_million": 1, "output_per_million": 1}}}', ".json", "unknown price"),
        ('{"models": {"m": {"output_per_million": 1}}}', ".json", "no input_cost_per_token"),
        ('{"models": {"m": {"input_per_million": 1}}}', ".json", "no output_cost_per_token"),
        (
            '{"models": {"m": {"input_per_million": 1, "input_cost_per_token": 1, "output_per_million": 1}}}',
            ".json",
            "twice",
        ),
        ('{"models": {"m": {"mode": "image_generation", "input_per_million": 1}}}', ".json", "mode"),
    ],
)
def test_bad_overrides_raise_clearly(tmp_path: Path, content: str, suffix: str, match: str) -> None:
    f = tmp_path / f"o{suffix}"
    f.write_text(content)
    with pytest.raises(ValueError, match=match):
        PriceBook.load(overrides=f)


def test_missing_override_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        PriceBook.load(overrides=tmp_path / "nope.json")


# -- update_price_file ------------------------------------------------------------------------

_LITELLM_SAMPLE = {
    "sample_spec": {"input_cost_per_token": 0.0, "mode": "one of: chat, embedding"},
    "m-chat": {
        "litellm_provider": "acme",
        "mode": "chat",
        "input_cost_per_token": 1e-6,
        "output_cost_per_token": 2e-6,
        "input_cost_per_token_batches": 5e-7,
        "input_cost_per_token_above_200k_tokens": 2e-6,
        "supports_vision": True,
        "max_tokens": 1000,
    },
    "m-embed": {"litellm_provider": "acme", "mode": "embedding", "input_cost_per_token": 1e-8},
    "m-image": {"litellm_provider": "acme", "mode": "image_generation", "output_cost_per_image": 0.04},
    "m-per-second": {"litellm_provider": "acme", "mode": "chat", "input_cost_per_second": 1e-4},
}


def test_update_price_file_trims_and_loads(tmp_path: Path) -> None:
    src = tmp_path / "model_prices_and_context_window.json"
    src.write_text(json.dumps(_LITELLM_SAMPLE))
    dest = tmp_path / "prices.json"
    assert update_price_file(src, dest) == 2
    data = json.loads(dest.read_text())
    assert set(data["models"]) == {"m-chat", "m-embed"}
    assert data["models"]["m-chat"] == {
        "litellm_provider": "acme",
        "mode": "chat",
        "input_cost_per_token": 1e-6,
        "output_cost_per_token": 2e-6,
        "input_cost_per_token_above_200k_tokens": 2e-6,
    }
    b = PriceBook.load(dest)
    assert len(b) == 2
    assert b.cost("m-chat", input_tokens=10, output_tokens=10) == pytest.approx(3e-5)
    # The raw LiteLLM file loads directly too.
    assert PriceBook.load(src).cost("m-chat", input_tokens=10, output_tokens=10) == pytest.approx(3e-5)


def test_update_from_wheel_records_version(tmp_path: Path) -> None:
    whl = tmp_path / "litellm-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("litellm/model_prices_and_context_window_backup.json", json.dumps(_LITELLM_SAMPLE))
    dest = tmp_path / "prices.json"
    assert update_price_file(whl, dest) == 2
    assert json.loads(dest.read_text())["source"]["litellm_version"] == "9.9.9"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("this is not json", "not valid JSON"),
        ("[1, 2, 3]", "expected a JSON object"),
        ('{"m": "gpt"}', "must be an object"),
        ('{"m": {"mode": "chat", "input_cost_per_token": -1e-6, "output_cost_per_token": 1e-6}}', ">= 0"),
        (
            '{"m": {"mode": "chat", "input_cost_per_token": "cheap", "output_cost_per_token": 1e-6}}',
            "must be a number",
        ),
        ('{"m": {"mode": "image_generation", "output_cost_per_image": 0.1}}', "no token-priced"),
        ("{}", "no token-priced"),
    ],
)
def test_update_rejects_malformed_files(tmp_path: Path, content: str, match: str) -> None:
    src = tmp_path / "src.json"
    src.write_text(content)
    dest = tmp_path / "prices.json"
    dest.write_text("untouched")
    with pytest.raises(ValueError, match=match):
        update_price_file(src, dest)
    assert dest.read_text() == "untouched"  # nothing written on failure


def test_update_rejects_missing_file_and_foreign_zip(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        update_price_file(tmp_path / "missing.json", tmp_path / "out.json")
    z = tmp_path / "other.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("x.txt", "hi")
    with pytest.raises(ValueError, match="litellm wheel"):
        update_price_file(z, tmp_path / "out.json")


def test_update_rejects_our_own_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="already an llmlens price file"):
        update_price_file(BUNDLED_FILE, tmp_path / "out.json")


def test_load_rejects_bad_price_file(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text(
        '{"format": "llmlens-prices/1", "models": {"m": {"mode": "chat", "output_cost_per_token": 1}}}'
    )
    with pytest.raises(ValueError, match="no input_cost_per_token"):
        PriceBook.load(f)
