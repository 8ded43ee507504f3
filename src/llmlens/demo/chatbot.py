"""The RAG chatbot API: POST /v1/chat (server-side sessions) and POST /api/chat (OpenAI-style, streamable).

Run alone with ``llmlens demo chatbot`` or ``python -m llmlens.demo.chatbot``; point it at any
OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, the demo mock) with --llm-base-url/--llm-api-key/--llm-model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Literal

import httpx
import openai
import structlog
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from opentelemetry import propagate
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field

import llmlens
from llmlens.demo.arguments import CHATBOT_HELP, add_chatbot_arguments
from llmlens.demo.http_metrics import HttpMetricsMiddleware
from llmlens.demo.rag import Answer, ChatbotMetrics, Fault, Passage, RagPipeline, RagSettings, UpstreamError
from llmlens.demo.runtime import serve
from llmlens.demo.sessions import SessionStore
from llmlens.demo.settings import (
    DEFAULT_LLM_PORT,
    LOOPBACK,
    resolve_llm_endpoint,
)

SERVICE_NAME = "demo-chatbot"
log = structlog.get_logger("llmlens.demo.chatbot")


class ChatRequest(BaseModel):
    session_id: str = Field(min_length=1, max_length=200)
    user_message: str = Field(min_length=1, max_length=100_000)
    user_id: str | None = Field(default=None, max_length=200)
    model: str | None = Field(default=None, max_length=200, description="one of the served models (GET /healthz)")
    fault: Fault | None = Field(default=None, description="demo failure injection for this one request")


class Source(BaseModel):
    chunk_id: str
    title: str
    score: float


class ChatResponse(BaseModel):
    session_id: str
    answer: str
    sources: list[Source]
    groundedness: float


class OpenAiMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=100_000)


class OpenAiChatRequest(BaseModel):
    messages: list[OpenAiMessage] = Field(min_length=1)
    stream: bool = False
    model: str | None = None
    user: str | None = None
    session_id: str | None = None
    fault: Fault | None = None


def create_app(
    settings: RagSettings, registry: CollectorRegistry | None = None, sessions: SessionStore | None = None
) -> FastAPI:
    metrics = ChatbotMetrics(registry or CollectorRegistry())
    store = sessions or SessionStore()
    state: dict[str, RagPipeline] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(base_url=settings.retriever_url) as http:
            llm = openai.AsyncOpenAI(
                base_url=settings.llm.base_url,
                api_key=settings.llm.api_key,
                timeout=settings.llm_timeout_s,
                max_retries=0,  # let failures show as failures instead of hiding behind retries
                http_client=openai.DefaultAsyncHttpxClient(
                    event_hooks={"request": [_propagate_trace_context]}
                ),
            )
            state["rag"] = RagPipeline(settings, http, llm, metrics)
            try:
                yield
            finally:
                await llm.close()

    app = FastAPI(title="llmlens demo RAG chatbot", lifespan=lifespan)

    @app.get("/metrics", include_in_schema=False)
    def metrics_page() -> Response:
        return metrics.http.exposition()

    @app.exception_handler(UpstreamError)
    async def upstream_failed(_: Request, exc: UpstreamError) -> JSONResponse:
        log.warning("upstream failed", upstream=exc.upstream, status=exc.status, error=exc.message)
        return JSONResponse(status_code=exc.status, content=_error_body(exc))

    @app.get("/healthz")
    def healthz() -> dict[str, object]:
        return {"status": "ok", "llm_model": settings.llm.model, "llm_models": list(settings.models)}

    def served(model: str | None) -> str:
        if model is None:
            return settings.llm.model
        if model not in settings.models:
            raise HTTPException(
                status_code=422,
                detail=f"model {model!r} is not served here; choose from {', '.join(settings.models)}",
            )
        return model

    @app.post("/v1/chat")
    async def chat(request: ChatRequest) -> ChatResponse:
        model = served(request.model)
        with llmlens.context(session_id=request.session_id, user_id=request.user_id):
            history = store.history(request.session_id)
            answer = await state["rag"].answer(request.user_message, history, model, request.fault)
            store.append_turn(request.session_id, request.user_message, answer.text)
            metrics.sessions.set(len(store))
            log.info("chat answered", history_messages=len(history), chunks_sent=len(answer.passages))
        return _chat_response(request.session_id, answer)

    @app.delete("/v1/chat/{session_id}")
    def reset(session_id: str) -> dict[str, str]:
        store.reset(session_id)
        metrics.sessions.set(len(store))
        return {"session_id": session_id, "status": "reset"}

    @app.post("/api/chat", response_model=None)
    async def openai_chat(request: OpenAiChatRequest) -> dict[str, object] | StreamingResponse:
        model = served(request.model)
        with llmlens.context(session_id=request.session_id, user_id=request.user):
            question, history = _split_messages(request.messages)
            rag = state["rag"]
            passages = await rag.retrieve(question, request.fault)
            messages, sent = rag.build_context(question, history, passages)
            if request.stream:
                deltas = await rag.stream(messages, sent, model, request.fault)
                return StreamingResponse(_sse(deltas, model), media_type="text/event-stream")
            answer = await rag.answer_from_messages(messages, sent, model, request.fault)
        return _completion_body(answer, model)

    app.add_middleware(HttpMetricsMiddleware, metrics=metrics.http)
    return app


async def _propagate_trace_context(request: httpx.Request) -> None:
    # llmlens's openai instrumentation already sends the LLM span's trace context; this covers the
    # chatbot's other calls through the same client, so the mock LLM always joins the trace.
    if "traceparent" not in request.headers:
        propagate.inject(request.headers)


def _split_messages(messages: Sequence[OpenAiMessage]) -> tuple[str, list[dict[str, str]]]:
    # The last user message is the question; earlier user/assistant turns are the history. A client's
    # own system prompt is dropped: the chatbot's grounding prompt must stay in charge.
    user_turns = [i for i, m in enumerate(messages) if m.role == "user"]
    if not user_turns:
        raise HTTPException(status_code=422, detail="messages must contain a user message")
    last = user_turns[-1]
    history = [{"role": m.role, "content": m.content} for m in messages[:last] if m.role != "system"]
    return messages[last].content, history


async def _sse(deltas: AsyncIterator[str], model: str) -> AsyncIterator[bytes]:
    """Relay deltas as OpenAI ``chat.completion.chunk`` server-sent events."""
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())

    def event(delta: dict[str, str], finish: str | None) -> bytes:
        chunk = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(chunk)}\n\n".encode()

    yield event({"role": "assistant"}, None)
    try:
        async for text in deltas:
            yield event({"content": text}, None)
    except UpstreamError as exc:  # mid-stream failure: the status line is already sent
        yield f"data: {json.dumps(_error_body(exc))}\n\n".encode()
        return
    yield event({}, "stop")
    yield b"data: [DONE]\n\n"


def _error_body(exc: UpstreamError) -> dict[str, object]:
    return {"error": {"type": f"{exc.upstream}_error", "message": str(exc), "upstream": exc.upstream}}


def _chat_response(session_id: str, answer: Answer) -> ChatResponse:
    return ChatResponse(
        session_id=session_id,
        answer=answer.text,
        sources=_sources(answer.passages),
        groundedness=answer.quality,
    )


def _sources(passages: Sequence[Passage]) -> list[Source]:
    return [Source(chunk_id=p.chunk_id, title=p.title, score=p.score) for p in passages]


def _completion_body(answer: Answer, model: str) -> dict[str, object]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": answer.text}, "finish_reason": "stop"}
        ],
        "sources": [s.model_dump() for s in _sources(answer.passages)],
        "groundedness": answer.quality,
    }


def check_llm_reachable(base_url: str, api_key: str, timeout_s: float = 5.0) -> str | None:
    """Return an error message when the LLM endpoint cannot be reached or refuses the key, else None."""
    try:
        response = httpx.get(
            f"{base_url}/models", headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout_s
        )
    except httpx.HTTPError as exc:
        return f"cannot reach the LLM endpoint at {base_url} ({exc.__class__.__name__}: {exc})"
    if response.status_code in (401, 403):
        return f"the LLM endpoint at {base_url} refused the API key (HTTP {response.status_code})"
    return None


def run(args: argparse.Namespace) -> int:
    llm = resolve_llm_endpoint(
        args.llm_base_url,
        args.llm_api_key,
        args.llm_model,
        default_base_url=f"http://{LOOPBACK}:{DEFAULT_LLM_PORT}/v1",
        allow_openai_env=True,
    )
    if not args.skip_llm_check and (problem := check_llm_reachable(llm.base_url, llm.api_key)):
        print(f"error: {SERVICE_NAME}: {problem}", file=sys.stderr)
        return 1
    settings = RagSettings(
        retriever_url=args.retriever_url, llm=llm, top_k=args.top_k, other_models=args.llm_models
    )
    return serve(SERVICE_NAME, args.host, args.port, args.otlp_endpoint, lambda: create_app(settings))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmlens demo chatbot", description=CHATBOT_HELP)
    add_chatbot_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
