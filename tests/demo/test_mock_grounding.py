"""The mock's larger models stick to the context they are given, so groundedness tells models apart."""

from __future__ import annotations

from llmlens.demo.grounding import grounding
from llmlens.demo.mock_llm import MODEL_GROUNDING, VOCABULARY, answer_words

EXCERPT = (
    "To export a page, open the page menu and choose Export. Markdown, PDF and HTML are available; "
    "comments are included in PDF exports only. A full workspace export runs in the background and "
    "arrives by email as a ZIP archive within an hour for most workspaces."
)
PROMPT = f"Answer from these excerpts.\n[Export data]\n{EXCERPT}\nHow do I export a page?"


def _mean_groundedness(share: float) -> float:
    scores = [grounding(" ".join(answer_words(seed, PROMPT, None, share)), [EXCERPT]).score for seed in range(40)]
    return sum(scores) / len(scores)


def test_no_share_answers_from_the_vocabulary_as_before() -> None:
    words = answer_words(3, PROMPT, None)
    assert words == answer_words(3, PROMPT, None, 0.0)
    assert set(words) <= set(VOCABULARY)


def test_a_full_share_answers_from_the_prompt() -> None:
    assert set(answer_words(3, PROMPT, None, 1.0)) <= set(PROMPT.split())


def test_groundedness_orders_the_demo_models() -> None:
    by_model = {model: _mean_groundedness(share) for model, share in MODEL_GROUNDING.items()}
    assert _mean_groundedness(0.0) < by_model["phi3"] < by_model["anthropic/claude-haiku-4-5"]
    assert by_model["anthropic/claude-haiku-4-5"] < by_model["gpt-4o"] < by_model["anthropic/claude-sonnet-4-5"]
