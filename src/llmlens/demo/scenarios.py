"""Traffic scenarios: what a burst of users of the Larkspur support bot sends to the chatbot.

A scenario is one unit of user behaviour (a question, a conversation, a spike, a storm of failures)
by a user of one of the demo's apps, and may send several requests. Each request is its own trace,
rooted in a client span named after the route (`POST /v1/chat`); the session id ties a conversation,
and the app, department, user and session travel as baggage to every service the request reaches.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

import llmlens
from llmlens.demo.apps import DemoApp
from llmlens.demo.rag import FAULTS
from llmlens.demo.settings import SCENARIO_NAMES

QUESTIONS = (
    "How do I reset my password?",
    "The password reset email never arrived, what should I do?",
    "How do I turn on two-factor authentication?",
    "I lost my phone and can't get my 2FA code",
    "How much does the Team plan cost?",
    "Can I get a refund on my annual subscription?",
    "How do I download my invoices as PDF?",
    "How do I cancel my subscription?",
    "How can I export my whole workspace to Markdown?",
    "Can I import Word documents?",
    "How do I share a page with someone outside my company?",
    "Does Larkspur work offline?",
    "What is a conflict copy?",
    "How do I restore an old version of a page?",
    "What keyboard shortcut makes text bold?",
    "How do I set up SAML single sign-on with Okta?",
    "What is the API rate limit?",
    "How do I verify webhook signatures?",
    "How do I connect Slack?",
    "Which Android versions are supported?",
    "How do I stop email notifications for a page?",
    "My account is locked after too many attempts",
    "How do I delete my account?",
    "Is my data encrypted at rest?",
    "Can admins turn off the AI assistant?",
    "What happens when we run out of storage?",
)

CONVERSATIONS = (
    (
        "How do I export a page?",
        "Does that include comments?",
        "And how long does a full workspace export take?",
    ),
    ("What plans do you have?", "Is there a discount for nonprofits?", "How do I pay by bank transfer?"),
    ("I can't sign in.", "It says my organisation requires SSO.", "Who do I contact if that still fails?"),
    ("How do webhooks work?", "What happens if my endpoint is down?", "How do I check the signature?"),
    ("Can I use Larkspur on my phone?", "Will my offline pages sync later?", "How do I clear the app cache?"),
    ("How much does the Team plan cost?", "Is there a discount for annual billing?", "Can I get a refund later?"),
)
# What a user may ask next, so some conversations run longer than their script.
FOLLOW_UPS = (
    "Thanks. Is that the same on the mobile app?",
    "Can an admin do that for the whole workspace?",
    "Where do I find that setting again?",
)

_LONG_PREAMBLE = (
    "Some background first. Our team of about forty people moved to Larkspur from an older wiki last "
    "quarter. We imported roughly two thousand pages from ZIP exports, plus a lot of Word documents and "
    "CSV tables, and most of it went fine, but some internal links still point to the old tool. We use "
    "single sign-on through our identity provider, we have guests from two agencies on a handful of "
    "pages, and several people work offline on the train and then see conflict copies appear. Finance "
    "also wants annual invoices with our VAT number, and legal keeps asking where the data is stored "
    "and how long backups are kept. We also run a small script against the API that sometimes gets "
    "HTTP 429 responses during the nightly sync. "
)


@dataclass(frozen=True)
class RequestResult:
    scenario: str
    endpoint: str
    status: str  # HTTP status code, or the transport error's class name
    ok: bool
    latency_s: float


Record = Callable[[RequestResult], None]


@dataclass
class ScenarioContext:
    client: httpx.AsyncClient
    rng: random.Random
    record: Record
    scenario: str
    app: DemoApp
    user_id: str
    served_models: frozenset[str] = frozenset()  # what the chatbot serves; others are not asked for

    def model(self, large: bool = False) -> str | None:
        """The app's model for this request, or None (the chatbot's default) when it is not served."""
        wanted = self.app.large_model if large else self.app.model
        return wanted if wanted in self.served_models else None


async def simple(ctx: ScenarioContext) -> None:
    session_id = _new_session()
    question = ctx.rng.choice(QUESTIONS)
    if ctx.rng.random() < 0.5:
        await _v1_chat(ctx, session_id, question)
    else:
        await _api_chat(ctx, session_id, [{"role": "user", "content": question}], stream=True)


async def long(ctx: ScenarioContext) -> None:
    """A long, involved question: the app's larger model gets it."""
    question = ctx.rng.choice(QUESTIONS)
    message = f"{_LONG_PREAMBLE * ctx.rng.randint(2, 4)}\n\nSo my actual question: {question}"
    await _api_chat(ctx, _new_session(), [{"role": "user", "content": message}], stream=True, large=True)


async def multi_turn(ctx: ScenarioContext) -> None:
    """A conversation of 3 to 5 turns: on /v1/chat (the chatbot keeps the history), or streamed on
    /api/chat, where the client sends the history back each turn as OpenAI-style clients do."""
    session_id = _new_session()
    turns = [*ctx.rng.choice(CONVERSATIONS), *ctx.rng.sample(FOLLOW_UPS, ctx.rng.randint(0, 2))]
    streamed = ctx.rng.random() < 0.4
    messages: list[dict[str, str]] = []
    for turn in turns:
        if streamed:
            messages.append({"role": "user", "content": turn})
            answer = await _api_chat(ctx, session_id, messages, stream=True)
            ok = answer is not None
            messages.append({"role": "assistant", "content": answer or ""})
        else:
            ok = await _v1_chat(ctx, session_id, turn)
        if not ok:
            return  # a real user gives up when the bot fails


async def burst(ctx: ScenarioContext, size: int = 8) -> None:
    """Many users at the same instant: sends ``size`` questions at once."""
    users = [dataclasses.replace(ctx, user_id=ctx.app.user_id(ctx.rng)) for _ in range(size)]
    await asyncio.gather(*(_v1_chat(user, _new_session(), ctx.rng.choice(QUESTIONS)) for user in users))


async def error_storm(ctx: ScenarioContext) -> None:
    """Requests that fail on purpose: each injected fault twice, plus a malformed request."""
    for fault in FAULTS * 2:
        await _v1_chat(ctx, _new_session(), ctx.rng.choice(QUESTIONS), fault=fault)
    await _post(ctx, "/v1/chat", {"session_id": _new_session(), "user_message": ""}, session_id="invalid")


SCENARIOS: dict[str, Callable[[ScenarioContext], Awaitable[None]]] = {
    "simple": simple,
    "long": long,
    "multi_turn": multi_turn,
    "burst": burst,
    "error_storm": error_storm,
}
assert tuple(SCENARIOS) == SCENARIO_NAMES  # settings.py names them for cheap flag checking


def _new_session() -> str:
    return f"sess-{uuid.uuid4().hex[:12]}"


async def _v1_chat(ctx: ScenarioContext, session_id: str, message: str, fault: str | None = None) -> bool:
    body: dict[str, Any] = {"session_id": session_id, "user_message": message, "user_id": ctx.user_id}
    if model := ctx.model():
        body["model"] = model
    if fault:
        body["fault"] = fault
    return await _post(ctx, "/v1/chat", body, session_id=session_id)


async def _post(ctx: ScenarioContext, path: str, body: dict[str, Any], session_id: str) -> bool:
    start = time.perf_counter()
    async with _request(ctx, path, session_id) as (span, headers):
        try:
            response = await ctx.client.post(path, json=body, headers=headers)
            status, ok = _answered(span, response.status_code), response.is_success
        except httpx.HTTPError as exc:
            status, ok = _failed(span, exc.__class__.__name__), False
    ctx.record(RequestResult(ctx.scenario, path, status, ok, time.perf_counter() - start))
    return ok


async def _api_chat(
    ctx: ScenarioContext, session_id: str, messages: list[dict[str, str]], stream: bool, large: bool = False
) -> str | None:
    """Ask on /api/chat (streamed: server-sent chunks); the answer's text, or None when it failed."""
    body: dict[str, Any] = {"messages": messages, "stream": stream, "user": ctx.user_id, "session_id": session_id}
    if model := ctx.model(large):
        body["model"] = model
    start = time.perf_counter()
    parts: list[str] = []
    async with _request(ctx, "/api/chat", session_id) as (span, headers):
        try:
            async with ctx.client.stream("POST", "/api/chat", json=body, headers=headers) as response:
                status, ok = _answered(span, response.status_code), response.is_success
                async for line in response.aiter_lines():
                    if not (ok and line.startswith("data: {")):
                        continue
                    event = json.loads(line[6:])
                    if "error" in event:
                        status, ok = _failed(span, "stream_error"), False
                    for choice in event.get("choices", ()):
                        parts.append((choice.get("delta") or {}).get("content") or "")
        except httpx.HTTPError as exc:
            status, ok = _failed(span, exc.__class__.__name__), False
    ctx.record(RequestResult(ctx.scenario, "/api/chat", status, ok, time.perf_counter() - start))
    return "".join(parts) if ok else None


_tracer = trace.get_tracer("llmlens.demo.traffic")


@asynccontextmanager
async def _request(ctx: ScenarioContext, path: str, session_id: str) -> AsyncIterator[tuple[Span, dict[str, str]]]:
    """The request's root: an HTTP client span named after the route, as the HTTP conventions name a
    client span whose URL template is known (an instrumented client knows only the method: "POST").
    Yields it with the headers that carry its trace context and the baggage of who is asking."""
    url = ctx.client.base_url.join(path)
    attributes = {"http.request.method": "POST", "url.full": str(url), "url.template": path,
                  "server.address": url.host, "server.port": url.port or 80}  # fmt: skip
    app = ctx.app
    with (
        llmlens.context(session_id=session_id, user_id=ctx.user_id, app=app.name, department=app.department),
        _tracer.start_as_current_span(f"POST {path}", kind=SpanKind.CLIENT, attributes=attributes) as span,
    ):
        headers: dict[str, str] = {}
        propagate.inject(headers)
        yield span, headers


def _answered(span: Span, status_code: int) -> str:
    span.set_attribute("http.response.status_code", status_code)
    return _failed(span, str(status_code)) if status_code >= 400 else str(status_code)


def _failed(span: Span, error_type: str) -> str:
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR))
    return error_type
