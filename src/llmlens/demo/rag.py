"""The chatbot's retrieval-augmented generation steps: retrieve, build context, generate, grade.

Each step is its own span so a trace shows where time and tokens went; the retriever call goes
over HTTP and the LLM call through the real ``openai`` client, both carrying the trace context.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import openai
import structlog
from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

import llmlens
from llmlens.demo.grounding import grounding
from llmlens.demo.http_metrics import HttpMetrics
from llmlens.demo.settings import LlmEndpoint

log = structlog.get_logger("llmlens.demo.rag")

Fault = Literal["retriever_error", "llm_error", "llm_rate_limit", "llm_timeout"]
FAULTS: tuple[str, ...] = ("retriever_error", "llm_error", "llm_rate_limit", "llm_timeout")

SYSTEM_PROMPT = (
    "You are the support assistant of Larkspur, a team notes and docs app. Answer the user's question "
    "using only the help-center excerpts below, in at most five sentences, and name the article titles "
    "you used. If the excerpts do not answer the question, say so and suggest contacting support."
)
QUALITY_SCORE_NAME = "groundedness"
# Asks the demo mock LLM to fail this one request; other endpoints ignore unknown headers.
MOCK_FAULT_HEADER = "x-mock-status"


@dataclass(frozen=True)
class RagSettings:
    retriever_url: str
    llm: LlmEndpoint
    top_k: int = 4
    min_score: float = 0.05
    max_context_chars: int = 3000
    max_tokens: int = 300
    llm_timeout_s: float = 30.0
    retriever_timeout_s: float = 10.0
    other_models: tuple[str, ...] = ()  # a request may ask for these instead of llm.model

    @property
    def models(self) -> tuple[str, ...]:
        """Every model a request may name, the default first."""
        return tuple(dict.fromkeys((self.llm.model, *self.other_models)))


@dataclass(frozen=True)
class Passage:
    chunk_id: str
    title: str
    text: str
    score: float


@dataclass(frozen=True)
class Answer:
    text: str
    passages: list[Passage]
    quality: float


class UpstreamError(Exception):
    """A call to the retriever or the LLM failed; ``status`` is the HTTP status to answer with."""

    def __init__(self, upstream: str, status: int, message: str) -> None:
        super().__init__(f"{upstream}: {message}")
        self.upstream, self.status, self.message = upstream, status, message


class ChatbotMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.http = HttpMetrics("chatbot", registry)
        self.chunks_sent = Histogram(
            "chatbot_chunks_sent",
            "Retrieved chunks placed into the LLM prompt per answer.",
            buckets=(0, 1, 2, 3, 4, 5, 6, 8, 10),
            registry=registry,
        )
        self.upstream_calls = Counter(
            "chatbot_upstream_calls",
            "Calls to upstream services, by upstream and outcome (HTTP status, timeout, connection_error).",
            ["upstream", "status"],
            registry=registry,
        )
        self.quality = Histogram(
            "chatbot_answer_groundedness",
            "Share of answer words found in the retrieved chunks.",
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
            registry=registry,
        )
        self.sessions = Gauge("chatbot_sessions", "Chat sessions held in memory.", registry=registry)


class RagPipeline:
    def __init__(
        self, settings: RagSettings, http: httpx.AsyncClient, llm: openai.AsyncOpenAI, metrics: ChatbotMetrics
    ) -> None:
        self.settings, self.http, self.llm, self.metrics = settings, http, llm, metrics

    async def answer(
        self, question: str, history: Sequence[dict[str, str]], model: str, fault: Fault | None = None
    ) -> Answer:
        """Non-streamed: the whole pipeline under one chain span."""
        with llmlens.span("rag answer", kind="chain", attributes={"rag.fault": fault or "none"}):
            passages = await self.retrieve(question, fault)
            messages, sent = self.build_context(question, history, passages)
            return await self.answer_from_messages(messages, sent, model, fault)

    async def answer_from_messages(
        self, messages: list[dict[str, str]], passages: Sequence[Passage], model: str, fault: Fault | None = None
    ) -> Answer:
        with llmlens.span("generate", kind="chain", attributes=self._generate_attributes(model, stream=False)):
            text = await self._complete(messages, model, fault)
        return Answer(text, list(passages), self.grade(text, passages))

    async def retrieve(self, question: str, fault: Fault | None = None) -> list[Passage]:
        # A negative top_k is refused by the retriever: a real failed call, visible in both services.
        top_k = -1 if fault == "retriever_error" else self.settings.top_k
        with llmlens.span("retrieve", kind="retrieval", attributes={"rag.top_k": top_k}) as span:
            payload = {"query": question, "top_k": top_k, "min_score": self.settings.min_score}
            try:
                response = await self.http.post(
                    "/search", json=payload, timeout=self.settings.retriever_timeout_s
                )
            except httpx.TimeoutException as exc:
                self._count("retriever", "timeout")
                raise UpstreamError("retriever", 504, "timed out") from exc
            except httpx.TransportError as exc:
                self._count("retriever", "connection_error")
                raise UpstreamError("retriever", 502, f"unreachable ({exc.__class__.__name__})") from exc
            self._count("retriever", str(response.status_code))
            if response.status_code != 200:
                raise UpstreamError(
                    "retriever", 502, f"answered HTTP {response.status_code}: {response.text[:200]}"
                )
            passages = [
                Passage(r["chunk_id"], r["title"], r["text"], r["score"]) for r in response.json()["results"]
            ]
            span.set_attribute("rag.chunks_retrieved", len(passages))
        return passages

    def build_context(
        self, question: str, history: Sequence[dict[str, str]], passages: Sequence[Passage]
    ) -> tuple[list[dict[str, str]], list[Passage]]:
        """Fit the best chunks into the context budget and assemble the chat messages."""
        with llmlens.span("build context", kind="chain") as span:
            sent: list[Passage] = []
            used = 0
            for p in passages:  # best first, as ranked by the retriever
                if used + len(p.text) > self.settings.max_context_chars and sent:
                    break
                sent.append(p)
                used += len(p.text)
            context = "\n\n".join(f"[{p.title}]\n{p.text}" for p in sent) or "(no matching articles)"
            messages = [
                {"role": "system", "content": f"{SYSTEM_PROMPT}\n\nHelp-center excerpts:\n{context}"},
                *history,
                {"role": "user", "content": question},
            ]
            avg = sum(p.score for p in sent) / len(sent) if sent else 0.0
            span.set_attribute("rag.chunks_sent", len(sent))
            span.set_attribute("rag.chunks_dropped", len(passages) - len(sent))
            span.set_attribute("rag.score.avg", round(avg, 4))
            span.set_attribute("rag.context.chars", sum(len(m["content"]) for m in messages))
            span.set_attribute("rag.history.messages", len(history))
            self.metrics.chunks_sent.observe(len(sent))
        return messages, sent

    async def stream(
        self, messages: list[dict[str, str]], passages: Sequence[Passage], model: str, fault: Fault | None = None
    ) -> AsyncIterator[str]:
        """Open the streamed LLM call now, so failures still get a proper HTTP status; return the deltas.

        The "generate" span belongs to the generator and so lasts until the last delta is relayed.
        """
        deltas = self._generate_stream(messages, passages, model, fault)
        await anext(deltas)  # runs up to the opened upstream stream; raises UpstreamError on failure
        return deltas

    @llmlens.observe(name="generate", kind="chain")
    async def _generate_stream(
        self, messages: list[dict[str, str]], passages: Sequence[Passage], model: str, fault: Fault | None
    ) -> AsyncIterator[str]:
        trace.get_current_span().set_attributes(self._generate_attributes(model, stream=True))
        chunks = await self._open_stream(messages, model, fault)
        yield ""  # the stream is open
        parts: list[str] = []
        async for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
                yield chunk.choices[0].delta.content
        self.grade("".join(parts), passages)

    def grade(self, answer: str, passages: Sequence[Passage]) -> float:
        """Record a groundedness score on the current trace (llmlens.score) and in /metrics."""
        result = grounding(answer, (p.text for p in passages))
        llmlens.score(QUALITY_SCORE_NAME, result.score, comment=result.comment)
        self.metrics.quality.observe(result.score)
        log.info("answer graded", groundedness=result.score, chunks=len(passages))
        return result.score

    async def _complete(self, messages: list[dict[str, str]], model: str, fault: Fault | None) -> str:
        try:
            response = await self.llm.chat.completions.create(
                messages=messages, **self._llm_arguments(model, fault)
            )
        except openai.APIError as exc:
            raise self._llm_failure(exc) from exc
        self._count("llm", "200")
        return response.choices[0].message.content or ""

    async def _open_stream(
        self, messages: list[dict[str, str]], model: str, fault: Fault | None
    ) -> openai.AsyncStream:
        arguments = self._llm_arguments(model, fault) | {"stream": True, "stream_options": {"include_usage": True}}
        try:
            chunks = await self.llm.chat.completions.create(messages=messages, **arguments)
        except openai.APIError as exc:
            raise self._llm_failure(exc) from exc
        self._count("llm", "200")
        return chunks

    def _llm_arguments(self, model: str, fault: Fault | None) -> dict[str, Any]:
        s = self.settings
        arguments: dict[str, Any] = {"model": model, "max_tokens": s.max_tokens, "temperature": 0.2}
        if fault == "llm_timeout":
            arguments["timeout"] = 0.001  # a real client-side timeout against a real server
        elif fault in ("llm_error", "llm_rate_limit"):
            arguments["extra_headers"] = {MOCK_FAULT_HEADER: "500" if fault == "llm_error" else "429"}
        return arguments

    def _llm_failure(self, exc: openai.APIError) -> UpstreamError:
        if isinstance(exc, openai.APITimeoutError):
            self._count("llm", "timeout")
            return UpstreamError("llm", 504, "timed out")
        if isinstance(exc, openai.APIConnectionError):
            self._count("llm", "connection_error")
            return UpstreamError("llm", 502, f"unreachable at {self.settings.llm.base_url}")
        status = getattr(exc, "status_code", 0)
        self._count("llm", str(status))
        return UpstreamError("llm", 429 if status == 429 else 502, f"answered HTTP {status}: {exc.message}")

    def _generate_attributes(self, model: str, stream: bool) -> dict[str, str | bool | int]:
        return {
            "gen_ai.request.model": model,
            "gen_ai.request.stream": stream,
            "gen_ai.request.max_tokens": self.settings.max_tokens,
        }

    def _count(self, upstream: str, status: str) -> None:
        self.metrics.upstream_calls.labels(upstream, status).inc()
