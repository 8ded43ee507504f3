"""A deterministic local text embedding: TF-IDF over words and character n-grams, feature-hashed.

The demo must run offline with no model download, yet retrieval should behave like retrieval:
a question about "resetting my password" has to land on the password article. Hashed lexical
features (the "hashing trick") give that for a small English corpus, cost microseconds, and are
identical on every machine because they use a keyed-free stable hash instead of Python's salted
``hash()``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

DEFAULT_DIMENSIONS = 256

_WORD = re.compile(r"[a-z0-9]+")

# Words that carry no topic; leaving them in makes every question look alike.
_STOPWORD_TEXT = """
a an the and or but if of to in on at by for with from into about as is are was were be been
being do does did have has had i me my we our you your it its this that these those there here
what which who whom how when where why can could should would will shall may might must not no
so than then too very just also any all some each more most other such only own same
am he she they them their his her up down out over under again further once
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())

# Relative weight of each feature family: whole words dominate, n-grams add tolerance to
# inflections ("reset" / "resetting") and typos. (Word pairs were tried and ranked worse here.)
_WORD_WEIGHT = 1.0
_CHAR_WEIGHT = 0.25
_CHAR_N = 4


def tokenize(text: str) -> list[str]:
    """Lower-cased alphanumeric words without stopwords."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


def _features(text: str) -> Counter[str]:
    words = tokenize(text)
    feats: Counter[str] = Counter()
    for w in words:
        feats["w:" + stem(w)] += _WORD_WEIGHT
        padded = f"<{w}>"
        for i in range(max(1, len(padded) - _CHAR_N + 1)):
            feats["c:" + padded[i : i + _CHAR_N]] += _CHAR_WEIGHT
    return feats


def stem(word: str) -> str:
    """A crude suffix stripper: enough to make "exports", "exporting" and "export" one word."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _bucket(feature: str, dimensions: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    # One hash bit picks the sign so collisions cancel out on average instead of piling up.
    sign = 1.0 if value & 1 else -1.0
    return (value >> 1) % dimensions, sign


class HashingEmbedder:
    """Maps texts to L2-normalised float32 vectors of a fixed size.

    ``fit`` on the indexed documents adds inverse document frequency weights (TF-IDF), so a rare,
    telling word such as "refund" outweighs one found everywhere such as "plan".
    """

    def __init__(self, dimensions: int = DEFAULT_DIMENSIONS) -> None:
        if dimensions < 8:
            raise ValueError(f"dimensions must be at least 8, got {dimensions}")
        self.dimensions = dimensions
        self._idf: dict[str, float] = {}
        self._unseen_idf = 1.0

    def fit(self, documents: Iterable[str]) -> HashingEmbedder:
        document_frequency: Counter[str] = Counter()
        count = 0
        for text in documents:
            document_frequency.update(_features(text).keys())
            count += 1
        self._idf = {f: math.log((1 + count) / (1 + df)) + 1.0 for f, df in document_frequency.items()}
        # A feature no document has cannot match anything, only collide with one that does: drop it.
        self._unseen_idf = 0.0
        return self

    def embed_one(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dimensions, dtype=np.float32)
        for feature, weight in _features(text).items():
            index, sign = _bucket(feature, self.dimensions)
            # Sub-linear term frequency: a word repeated ten times is not ten times as relevant.
            tf = 1.0 + math.log(weight) if weight >= 1 else weight
            vec[index] += sign * tf * self._idf.get(feature, self._unseen_idf)
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm > 0 else vec

    def embed(self, texts: Sequence[str] | Iterable[str]) -> np.ndarray:
        """Embed many texts; returns an array of shape (n, dimensions)."""
        rows = [self.embed_one(t) for t in texts]
        if not rows:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return np.vstack(rows)
