"""The local embedding is deterministic and good enough that related questions find their article."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from llmlens.demo.embedding import HashingEmbedder
from llmlens.demo.search_index import SearchIndex, load_chunks


@pytest.fixture(scope="module")
def index() -> SearchIndex:
    return SearchIndex(load_chunks(), HashingEmbedder())


def test_vectors_are_unit_length_and_repeatable() -> None:
    embedder = HashingEmbedder()
    a = embedder.embed(["How do I reset my password?", "Export the workspace"])
    b = embedder.embed(["How do I reset my password?", "Export the workspace"])
    assert a.shape == (2, 256)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)


def test_vectors_do_not_depend_on_the_process_hash_seed() -> None:
    """Python's hash() is salted per process; the embedding must not be."""
    code = "from llmlens.demo.embedding import HashingEmbedder; print(HashingEmbedder().embed_one('refund policy').tolist())"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_empty_text_gives_a_zero_vector() -> None:
    assert not HashingEmbedder().embed_one("the of and").any()


def test_too_few_dimensions_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 8"):
        HashingEmbedder(4)


@pytest.mark.parametrize(
    ("question", "doc_id"),
    [
        ("I forgot my password and the reset email never came", "reset-password"),
        ("can I get a refund for the annual plan I bought last week", "refund-policy"),
        ("how much is the team plan per member", "plans-and-pricing"),
        ("download everything in my workspace as markdown files", "export-data"),
        ("configure SAML login with Okta", "single-sign-on"),
        ("the API returns 429 too many requests", "api-and-rate-limits"),
        ("a conflict copy of my paragraph appeared after editing offline", "sync-conflicts"),
        ("restore yesterday's version of a page", "page-history"),
        ("which keyboard shortcut makes text bold", "keyboard-shortcuts"),
        ("is customer data encrypted at rest", "data-retention-and-privacy"),
    ],
)
def test_related_question_ranks_its_article_first(index: SearchIndex, question: str, doc_id: str) -> None:
    hits = index.search(question, top_k=3)
    assert hits[0].chunk.doc_id == doc_id, [(h.chunk.doc_id, round(h.score, 3)) for h in hits]


def test_scores_are_sorted_and_min_score_filters(index: SearchIndex) -> None:
    hits = index.search("webhook delivery retries", top_k=10)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(h.score >= 0.3 for h in index.search("webhook delivery retries", top_k=10, min_score=0.3))
    assert len(index.search("webhook delivery retries", top_k=10, min_score=0.3)) < len(hits)


def test_every_bundled_document_becomes_chunks(index: SearchIndex) -> None:
    doc_ids = {c.doc_id for c in index.chunks}
    assert len(doc_ids) >= 20
    assert index.size == len(index.chunks)
    assert all(c.text.startswith(c.title) for c in index.chunks)
