"""The chatbot serves several models: /healthz names them; a request naming another is refused with a
clear 422 before any upstream is called (the upstreams here are closed ports)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from llmlens.demo.chatbot import create_app
from llmlens.demo.rag import RagSettings
from llmlens.demo.settings import LlmEndpoint, free_port


@pytest.fixture
def chatbot() -> TestClient:
    nowhere = f"http://127.0.0.1:{free_port()}"
    settings = RagSettings(
        retriever_url=nowhere,
        llm=LlmEndpoint(f"{nowhere}/v1", "key", "gpt-4o-mini"),
        other_models=("anthropic/claude-haiku-4-5", "phi3", "gpt-4o-mini"),
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_healthz_lists_the_served_models_default_first(chatbot: TestClient) -> None:
    health = chatbot.get("/healthz").json()
    assert health["llm_model"] == "gpt-4o-mini"
    assert health["llm_models"] == ["gpt-4o-mini", "anthropic/claude-haiku-4-5", "phi3"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat", {"session_id": "s", "user_message": "hi", "model": "gpt-5"}),
        ("/api/chat", {"messages": [{"role": "user", "content": "hi"}], "model": "gpt-5"}),
    ],
)
def test_a_model_not_served_is_refused(chatbot: TestClient, path: str, body: dict) -> None:
    response = chatbot.post(path, json=body)
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "model 'gpt-5' is not served here; choose from gpt-4o-mini, anthropic/claude-haiku-4-5, phi3"
    )


def test_a_served_model_goes_upstream(chatbot: TestClient) -> None:
    # Accepted, so the chatbot calls the retriever, which is not there: an upstream error, not a 422.
    response = chatbot.post("/v1/chat", json={"session_id": "s", "user_message": "hi", "model": "phi3"})
    assert response.status_code == 502
    assert response.json()["error"]["upstream"] == "retriever"
