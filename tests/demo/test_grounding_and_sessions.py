"""The groundedness score and the chatbot's session store."""

from __future__ import annotations

from llmlens.demo.grounding import grounding
from llmlens.demo.sessions import SessionStore


def test_answer_built_from_the_sources_scores_high() -> None:
    sources = ["Reset your password from the sign-in page; the reset link stays valid for 30 minutes."]
    result = grounding(
        "Open the sign-in page and reset your password; the link is valid 30 minutes.", sources
    )
    assert result.score >= 0.8
    assert result.answer_words > 0


def test_answer_unrelated_to_the_sources_scores_low() -> None:
    sources = ["Reset your password from the sign-in page."]
    assert grounding("Bananas ripen faster next to apples in a paper bag.", sources).score == 0.0


def test_empty_answer_scores_zero() -> None:
    assert grounding("", ["anything"]).score == 0.0


def test_history_is_bounded_per_session_and_across_sessions() -> None:
    store = SessionStore(max_sessions=2, max_turns=2)
    for i in range(3):
        store.append_turn("a", f"q{i}", f"a{i}")
    assert [m["content"] for m in store.history("a")] == ["q1", "a1", "q2", "a2"]
    store.append_turn("b", "q", "a")
    store.history("a")  # touch "a" so "b" is the least recently used
    store.append_turn("c", "q", "a")
    assert store.history("b") == []
    assert len(store) == 2


def test_reset_forgets_a_session() -> None:
    store = SessionStore()
    store.append_turn("a", "q", "a")
    store.reset("a")
    assert store.history("a") == []
