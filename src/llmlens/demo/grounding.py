"""A cheap, deterministic answer-quality check: how much of the answer is backed by the sources.

The score is the share of the answer's content words that also occur in the retrieved chunks
(after the same normalisation the embedding uses). It cannot judge truth, but it catches the
failure a RAG app fears most, answers that ignore the retrieved context, without an extra LLM call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from llmlens.demo.embedding import stem, tokenize

_MIN_WORD_LEN = 3


@dataclass(frozen=True)
class Grounding:
    score: float  # 0..1
    supported_words: int
    answer_words: int

    @property
    def comment(self) -> str:
        return f"{self.supported_words} of {self.answer_words} answer words occur in the retrieved chunks"


def _content_words(text: str) -> set[str]:
    return {stem(w) for w in tokenize(text) if len(w) >= _MIN_WORD_LEN}


def grounding(answer: str, sources: Iterable[str]) -> Grounding:
    """Score 1.0 when every content word of the answer appears in some source, 0.0 when none does."""
    answer_words = _content_words(answer)
    if not answer_words:
        return Grounding(0.0, 0, 0)
    source_words: set[str] = set()
    for text in sources:
        source_words |= _content_words(text)
    supported = len(answer_words & source_words)
    return Grounding(round(supported / len(answer_words), 4), supported, len(answer_words))
