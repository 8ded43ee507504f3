"""A mock of the OpenAI HTTP API for the demo, the tests and the benchmarks.

    python -m llmlens.demo.mock_llm --host 127.0.0.1 --port 8702 [--ttft-ms 20 --ms-per-token 2
        --error-rate 0 --rate-limit-rate 0 --timeout-rate 0 --seed 0]

Endpoints: POST /v1/chat/completions (SSE streaming honouring `stream_options.include_usage`),
POST /v1/embeddings (float or base64), POST /v1/responses (streaming too), GET /v1/models and
GET /metrics (vLLM-style serving metrics).

Answers are deterministic: the text is drawn from a vocabulary with a generator seeded by the
settings' seed and the prompt, so tests can assert on it. One whitespace-separated word is one
token, and the prompt's token count is its word count plus 4 per message, so a test can predict
usage. Latency is simulated as `ttft_ms` (+0.01 ms per prompt token) before the first token and
`ms_per_token` per further token (times MODEL_SLOWNESS for larger and local models); both 0 for
benchmarks.

Failure injection, per request header (wins) or at random with the configured rates:
  x-mock-status: 429 | 500 | 503 | timeout   -> that error (429 carries Retry-After)
  x-mock-cached-tokens: N                    -> report N cached prompt tokens
Models whose name starts with "o<digit>" or "gpt-5" report half their output as reasoning tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import random
import struct
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

# The real API answers an alias with a dated snapshot; the mock does the same.
MODEL_SNAPSHOTS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
    # As a gateway (LiteLLM, OpenRouter) answers for a provider-prefixed model: the provider's snapshot.
    "anthropic/claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "anthropic/claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
}
# Larger models and a local one on a laptop answer slower: their latency is the settings' times this.
MODEL_SLOWNESS = {"gpt-4o": 1.6, "anthropic/claude-haiku-4-5": 1.2, "anthropic/claude-sonnet-4-5": 2.0, "phi3": 2.5}
# ... and stick closer to the context they are given: the share of answer words taken from the prompt,
# so a groundedness score tells the models apart (others, gpt-4o-mini included, answer from the vocabulary).
MODEL_GROUNDING = {"gpt-4o": 0.7, "anthropic/claude-haiku-4-5": 0.5, "anthropic/claude-sonnet-4-5": 0.8, "phi3": 0.25}
EMBEDDING_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-ada-002": 1536,
    "text-embedding-3-large": 3072,
}
DEFAULT_EMBEDDING_DIMENSIONS = 768
LISTED_MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "o4-mini",
    "text-embedding-3-small",
    "anthropic/claude-haiku-4-5",
    "anthropic/claude-sonnet-4-5",
    "phi3",
)

VOCABULARY = [
    "the",
    "answer",
    "depends",
    "on",
    "your",
    "plan",
    "and",
    "the",
    "region",
    "you",
    "deploy",
    "in",
    "so",
    "check",
    "the",
    "billing",
    "page",
    "first",
    "then",
    "open",
    "a",
    "ticket",
    "with",
    "support",
    "if",
    "the",
    "invoice",
    "still",
    "looks",
    "wrong",
    "we",
    "usually",
    "reply",
    "within",
    "one",
    "business",
    "day",
    "and",
    "can",
    "refund",
    "duplicate",
    "charges",
    "quickly",
    "remember",
    "to",
    "rotate",
    "keys",
    "regularly",
]
MIN_ANSWER_TOKENS, MAX_ANSWER_TOKENS = 8, 40

ERROR_BODIES = {
    429: ("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", "overloaded"),
}
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


@dataclass(frozen=True)
class MockSettings:
    ttft_ms: float = 20.0
    ms_per_token: float = 2.0
    error_rate: float = 0.0  # share of requests answered 500
    rate_limit_rate: float = 0.0  # share answered 429
    timeout_rate: float = 0.0  # share that hang for `timeout_s` (the client times out first)
    timeout_s: float = 30.0
    seed: int = 0


# --- Deterministic content -----------------------------------------------------------------


def response_model(model: str) -> str:
    return MODEL_SNAPSHOTS.get(model, model)


def count_tokens(text: str) -> int:
    return len(text.split())


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def prompt_tokens(messages: Sequence[dict[str, Any]]) -> int:
    return sum(4 + count_tokens(_message_text(m.get("content"))) for m in messages)


def answer_words(seed: int, prompt: str, max_tokens: int | None, from_prompt: float = 0.0) -> list[str]:
    """The mock's answer to a prompt: same seed and prompt, same words.

    ``from_prompt`` is the share of words taken from the prompt itself rather than the vocabulary: how
    closely a model sticks to the context it was given (MODEL_GROUNDING).
    """
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    n = rng.randint(MIN_ANSWER_TOKENS, MAX_ANSWER_TOKENS)
    if max_tokens is not None and max_tokens > 0:
        n = min(n, max_tokens)
    context = [w for w in prompt.split() if len(w) > 3 and w.isalpha()] if from_prompt > 0 else []
    if not context:
        return [rng.choice(VOCABULARY) for _ in range(n)]
    return [rng.choice(context) if rng.random() < from_prompt else rng.choice(VOCABULARY) for _ in range(n)]


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A unit vector derived from the text's hash (same text, same vector)."""
    rng = random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))
    vector = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [v / norm for v in vector]


def _reasoning_share(model: str, output_tokens: int) -> int:
    name = model.lower()
    if (len(name) > 1 and name[0] == "o" and name[1].isdigit()) or name.startswith("gpt-5"):
        return output_tokens // 2
    return 0


def _int_header(request: Request, name: str) -> int:
    try:
        return max(0, int(request.headers.get(name, "0")))
    except ValueError:
        return 0


# --- Serving metrics (vLLM names) ------------------------------------------------------------


class ServingMetrics:
    """vLLM-style serving metrics in a registry of this app's own (several apps may share a process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        labels = ["model_name"]
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "End-to-end request latency.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds",
            "Time to first token.",
            labels,
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self.generation = Counter(
            "vllm:generation_tokens", "Generated tokens.", labels, registry=self.registry
        )
        self.prompt = Counter("vllm:prompt_tokens", "Prefill tokens.", labels, registry=self.registry)
        self.requests = Counter(
            "vllm:request_success", "Finished requests.", labels + ["finished_reason"], registry=self.registry
        )
        self.failures = Counter(
            "mock_llm:request_failures", "Injected failures.", labels + ["status"], registry=self.registry
        )
        self.running = Gauge(
            "vllm:num_requests_running", "Requests being served.", labels, registry=self.registry
        )
        self.waiting = Gauge(
            "vllm:num_requests_waiting", "Requests waiting to be served.", labels, registry=self.registry
        )

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


# --- The app -----------------------------------------------------------------------------------


class MockLlm:
    """Request handling, separate from routing so each endpoint reads as one function."""

    def __init__(self, settings: MockSettings) -> None:
        self.settings = settings
        self.metrics = ServingMetrics()
        self._rng = random.Random(settings.seed)
        self._ids = 0

    def next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}-mock{self._ids:08d}"

    def injected_status(self, request: Request) -> str | None:
        """An error to answer with: from `x-mock-status`, else drawn at the configured rates."""
        forced = request.headers.get("x-mock-status")
        if forced:
            return forced.strip().lower()
        s = self.settings
        if s.rate_limit_rate or s.error_rate or s.timeout_rate:
            draw = self._rng.random()
            if draw < s.rate_limit_rate:
                return "429"
            if draw < s.rate_limit_rate + s.error_rate:
                return "500"
            if draw < s.rate_limit_rate + s.error_rate + s.timeout_rate:
                return "timeout"
        return None

    async def begin(self, request: Request, *, snapshot: bool = True) -> tuple[dict[str, Any], str, Response | None]:
        """Read an API request: its body, its model, and the failure to answer instead, if one is injected.

        Failures are counted under the model name the API answers with (a dated snapshot for chat
        models when `snapshot`), like the successful requests.
        """
        body = await request.json()
        model = str(body.get("model", ""))
        injected = self.injected_status(request)
        failed = await self.failure(injected, response_model(model) if snapshot else model) if injected else None
        return body, model, failed

    async def failure(self, status: str, model: str) -> Response | None:
        self.metrics.failures.labels(model, status).inc()
        if status == "timeout":
            await asyncio.sleep(self.settings.timeout_s)
            status = "504"
        code = int(status) if status.isdigit() else 500
        if code < 400:
            return None
        message, kind, err_code = ERROR_BODIES.get(code, (f"Mock error {code}", "server_error", None))
        headers = {"retry-after": "1", "x-ratelimit-remaining-requests": "0"} if code == 429 else {}
        body = {"error": {"message": message, "type": kind, "param": None, "code": err_code}}
        return JSONResponse(body, status_code=code, headers=headers)

    def ttft_s(self, n_prompt: int, model: str = "") -> float:
        return (self.settings.ttft_ms + 0.01 * n_prompt) * MODEL_SLOWNESS.get(model, 1.0) / 1000.0

    def per_token_s(self, model: str = "") -> float:
        return self.settings.ms_per_token * MODEL_SLOWNESS.get(model, 1.0) / 1000.0

    async def sleep_for_answer(self, n_prompt: int, n_output: int, model: str = "") -> None:
        delay = self.ttft_s(n_prompt, model) + max(0, n_output - 1) * self.per_token_s(model)
        if delay > 0:
            await asyncio.sleep(delay)


def _chat_usage(n_prompt: int, n_output: int, cached: int, reasoning: int) -> dict[str, Any]:
    return {
        "prompt_tokens": n_prompt,
        "completion_tokens": n_output,
        "total_tokens": n_prompt + n_output,
        "prompt_tokens_details": {"cached_tokens": min(cached, n_prompt), "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _tool_call(body: dict[str, Any], call_id: str) -> dict[str, Any] | None:
    """Call the first offered function once, unless the conversation already holds a tool result."""
    tools = body.get("tools") or []
    messages = body.get("messages") or []
    if not tools or body.get("tool_choice") == "none" or any(m.get("role") == "tool" for m in messages):
        return None
    function = (tools[0] or {}).get("function") or {}
    args = {"location": "Paris"} if "weather" in str(function.get("name", "")) else {}
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": function.get("name", "tool"), "arguments": json.dumps(args)},
    }


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


async def chat_completions(mock: MockLlm, request: Request) -> Response:
    body, model, failed = await mock.begin(request)
    if failed is not None:
        return failed
    answered_model = response_model(model)
    messages = body.get("messages") or []
    n_prompt = prompt_tokens(messages)
    prompt = "\n".join(_message_text(m.get("content")) for m in messages)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    completion_id = mock.next_id("chatcmpl")
    tool_call = _tool_call(body, mock.next_id("call"))
    words = [] if tool_call else answer_words(mock.settings.seed, prompt, max_tokens, MODEL_GROUNDING.get(model, 0))
    n_output = len(words) if words else 12
    finish = "tool_calls" if tool_call else ("length" if max_tokens and len(words) >= max_tokens else "stop")
    usage = _chat_usage(
        n_prompt, n_output, _int_header(request, "x-mock-cached-tokens"), _reasoning_share(model, n_output)
    )
    created = int(time.time())
    m = mock.metrics
    m.prompt.labels(answered_model).inc(n_prompt)
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        stream = _chat_stream(
            mock,
            completion_id,
            created,
            answered_model,
            words,
            tool_call,
            finish,
            usage if include_usage else None,
            n_prompt,
            model,
        )
        return StreamingResponse(stream, media_type="text/event-stream")
    started = time.perf_counter()
    m.running.labels(answered_model).inc()
    try:
        await mock.sleep_for_answer(n_prompt, n_output, model)
    finally:
        m.running.labels(answered_model).dec()
    m.ttft.labels(answered_model).observe(mock.ttft_s(n_prompt, model))
    m.e2e.labels(answered_model).observe(time.perf_counter() - started)
    m.generation.labels(answered_model).inc(n_output)
    m.requests.labels(answered_model, finish).inc()
    message: dict[str, Any] = {
        "role": "assistant",
        "content": " ".join(words) if words else None,
        "refusal": None,
    }
    if tool_call:
        message["tool_calls"] = [tool_call]
    return JSONResponse(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": answered_model,
            "system_fingerprint": "fp_mock",
            "service_tier": "default",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage,
        }
    )


async def _chat_stream(
    mock: MockLlm,
    completion_id: str,
    created: int,
    model: str,
    words: list[str],
    tool_call: dict[str, Any] | None,
    finish: str,
    usage: dict[str, Any] | None,
    n_prompt: int,
    requested_model: str,
) -> AsyncIterator[bytes]:
    m = mock.metrics
    started = time.perf_counter()
    m.running.labels(model).inc()
    base = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_mock",
        "service_tier": "default",
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _sse({**base, "choices": [choice], **({"usage": None} if usage else {})})

    try:
        # Like a real server: nothing is sent until prefill is done, then the role chunk comes first.
        ttft = mock.ttft_s(n_prompt, requested_model)
        if ttft > 0:
            await asyncio.sleep(ttft)
        m.ttft.labels(model).observe(time.perf_counter() - started)
        yield chunk({"role": "assistant", "content": "", "refusal": None})
        per_token = mock.per_token_s(requested_model)
        if tool_call:
            yield chunk({"tool_calls": [{"index": 0, **tool_call}]})
        for i, word in enumerate(words):
            if i and per_token > 0:
                await asyncio.sleep(per_token)
            yield chunk({"content": word if i == 0 else " " + word})
        yield chunk({}, finish)
        if usage is not None:
            yield _sse({**base, "choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"
        m.generation.labels(model).inc(usage["completion_tokens"] if usage else max(1, len(words)))
        m.requests.labels(model, finish).inc()
    finally:
        m.running.labels(model).dec()
        m.e2e.labels(model).observe(time.perf_counter() - started)


async def embeddings(mock: MockLlm, request: Request) -> Response:
    body, model, failed = await mock.begin(request, snapshot=False)
    if failed is not None:
        return failed
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else [str(t) for t in (inputs or [])]
    dimensions = int(body.get("dimensions") or EMBEDDING_DIMENSIONS.get(model, DEFAULT_EMBEDDING_DIMENSIONS))
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for i, text in enumerate(texts):
        vector = embedding_vector(text, dimensions)
        value: Any = (
            base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode() if as_base64 else vector
        )
        data.append({"object": "embedding", "index": i, "embedding": value})
    n_prompt = sum(count_tokens(t) for t in texts)
    mock.metrics.prompt.labels(model).inc(n_prompt)
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": n_prompt, "total_tokens": n_prompt},
        }
    )


def _responses_input(body: dict[str, Any]) -> tuple[str, int]:
    items = body.get("input")
    instructions = body.get("instructions") or ""
    if isinstance(items, str):
        messages = [{"content": items}]
    else:
        messages = [i for i in (items or []) if isinstance(i, dict)]
    if instructions:
        messages = [{"content": instructions}, *messages]
    prompt = "\n".join(_message_text(m.get("content")) for m in messages)
    return prompt, prompt_tokens(messages)


async def responses(mock: MockLlm, request: Request) -> Response:
    body, model, failed = await mock.begin(request)
    if failed is not None:
        return failed
    answered_model = response_model(model)
    prompt, n_prompt = _responses_input(body)
    words = answer_words(mock.settings.seed, prompt, body.get("max_output_tokens"), MODEL_GROUNDING.get(model, 0))
    n_output = len(words)
    response_id, message_id = mock.next_id("resp"), mock.next_id("msg")
    text = " ".join(words)
    usage = {
        "input_tokens": n_prompt,
        "input_tokens_details": {
            "cached_tokens": min(_int_header(request, "x-mock-cached-tokens"), n_prompt)
        },
        "output_tokens": n_output,
        "output_tokens_details": {"reasoning_tokens": _reasoning_share(model, n_output)},
        "total_tokens": n_prompt + n_output,
    }

    def response_object(status: str, content_text: str | None) -> dict[str, Any]:
        output = (
            []
            if content_text is None
            else [
                {
                    "type": "message",
                    "id": message_id,
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": content_text, "annotations": []}],
                }
            ]
        )
        return {
            "id": response_id,
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "model": answered_model,
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "temperature": body.get("temperature", 1.0),
            "top_p": body.get("top_p", 1.0),
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "error": None,
            "incomplete_details": None,
            "metadata": body.get("metadata") or {},
            "usage": usage if status == "completed" else None,
        }

    mock.metrics.prompt.labels(answered_model).inc(n_prompt)
    mock.metrics.generation.labels(answered_model).inc(n_output)
    if not body.get("stream"):
        await mock.sleep_for_answer(n_prompt, n_output)
        return JSONResponse(response_object("completed", text))

    async def events() -> AsyncIterator[bytes]:
        seq = 0

        def event(kind: str, **fields: Any) -> bytes:
            nonlocal seq
            seq += 1
            return b"event: " + kind.encode() + b"\n" + _sse({"type": kind, "sequence_number": seq, **fields})

        yield event("response.created", response=response_object("in_progress", None))
        ttft = mock.ttft_s(n_prompt)
        if ttft > 0:
            await asyncio.sleep(ttft)
        per_token = mock.settings.ms_per_token / 1000.0
        for i, word in enumerate(words):
            if i and per_token > 0:
                await asyncio.sleep(per_token)
            yield event(
                "response.output_text.delta",
                item_id=message_id,
                output_index=0,
                content_index=0,
                delta=word if i == 0 else " " + word,
                logprobs=[],
            )
        yield event(
            "response.output_text.done",
            item_id=message_id,
            output_index=0,
            content_index=0,
            text=text,
            logprobs=[],
        )
        yield event("response.completed", response=response_object("completed", text))

    return StreamingResponse(events(), media_type="text/event-stream")


def create_app(settings: MockSettings | None = None) -> FastAPI:
    """The mock's ASGI app; `settings` default to fast answers and no injected failures."""
    mock = MockLlm(settings or MockSettings())
    app = FastAPI(title="llmlens mock LLM", docs_url=None, redoc_url=None)
    app.state.mock = mock

    @app.post("/v1/chat/completions")
    async def _chat(request: Request) -> Response:
        return await chat_completions(mock, request)

    @app.post("/v1/embeddings")
    async def _embeddings(request: Request) -> Response:
        return await embeddings(mock, request)

    @app.post("/v1/responses")
    async def _responses(request: Request) -> Response:
        return await responses(mock, request)

    @app.get("/v1/models")
    async def _models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "llmlens-mock"}
                for m in LISTED_MODELS
            ],
        }

    @app.get("/metrics")
    async def _metrics() -> Response:
        return PlainTextResponse(
            mock.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @app.get("/health")
    async def _health() -> dict[str, str]:
        return {"status": "ok"}

    return app


STANDALONE_PROG = "python -m llmlens.demo.mock_llm"


def parse_args(argv: Sequence[str] | None, prog: str = STANDALONE_PROG) -> argparse.Namespace:
    """The mock's flags; ``prog`` is the command that runs it, for --help and error messages."""
    d = MockSettings()
    p = argparse.ArgumentParser(prog=prog, description="OpenAI-compatible mock LLM")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=8702, help="port to listen on (default %(default)s)")
    p.add_argument(
        "--ttft-ms", type=float, default=d.ttft_ms, help="time to first token (default %(default)s)"
    )
    p.add_argument(
        "--ms-per-token", type=float, default=d.ms_per_token, help="per further token (default %(default)s)"
    )
    p.add_argument("--error-rate", type=float, default=d.error_rate, help="share of requests answered 500")
    p.add_argument("--rate-limit-rate", type=float, default=d.rate_limit_rate, help="share answered 429")
    p.add_argument(
        "--timeout-rate", type=float, default=d.timeout_rate, help="share that hang for --timeout-s"
    )
    p.add_argument(
        "--timeout-s", type=float, default=d.timeout_s, help="how long a timeout hangs (default %(default)s)"
    )
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the answers' words (default %(default)s)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None, prog: str = STANDALONE_PROG) -> int:
    import uvicorn

    args = parse_args(argv, prog)
    settings = MockSettings(
        ttft_ms=args.ttft_ms,
        ms_per_token=args.ms_per_token,
        error_rate=args.error_rate,
        rate_limit_rate=args.rate_limit_rate,
        timeout_rate=args.timeout_rate,
        timeout_s=args.timeout_s,
        seed=args.seed,
    )
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
