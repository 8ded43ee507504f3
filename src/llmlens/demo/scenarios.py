"""Traffic scenarios: what a burst of users of the Larkspur support bot sends to the chatbot.

A scenario is one unit of user behaviour (a question, a conversation, a spike, a storm of failures)
and may send several requests. Each request is its own trace; the session id ties a conversation.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

import llmlens
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
    user_id: str


async def simple(ctx: ScenarioContext) -> None:
    session_id = _new_session()
    question = ctx.rng.choice(QUESTIONS)
    if ctx.rng.random() < 0.5:
        await _v1_chat(ctx, session_id, question)
    else:
        await _api_chat(ctx, session_id, [{"role": "user", "content": question}], stream=True)


async def long(ctx: ScenarioContext) -> None:
    question = ctx.rng.choice(QUESTIONS)
    message = f"{_LONG_PREAMBLE * ctx.rng.randint(2, 4)}\n\nSo my actual question: {question}"
    await _api_chat(ctx, _new_session(), [{"role": "user", "content": message}], stream=True)


async def multi_turn(ctx: ScenarioContext) -> None:
    session_id = _new_session()
    for turn in ctx.rng.choice(CONVERSATIONS):
        if not await _v1_chat(ctx, session_id, turn):
            return  # a real user gives up when the bot fails


async def burst(ctx: ScenarioContext, size: int = 8) -> None:
    """Many users at the same instant: sends ``size`` questions at once."""
    await asyncio.gather(*(_v1_chat(ctx, _new_session(), ctx.rng.choice(QUESTIONS)) for _ in range(size)))


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
    if fault:
        body["fault"] = fault
    return await _post(ctx, "/v1/chat", body, session_id=session_id)


async def _post(ctx: ScenarioContext, path: str, body: dict[str, Any], session_id: str) -> bool:
    start = time.perf_counter()
    with llmlens.context(session_id=session_id, user_id=ctx.user_id):
        try:
            response = await ctx.client.post(path, json=body)
            status, ok = str(response.status_code), response.is_success
        except httpx.HTTPError as exc:
            status, ok = exc.__class__.__name__, False
    ctx.record(RequestResult(ctx.scenario, path, status, ok, time.perf_counter() - start))
    return ok


async def _api_chat(
    ctx: ScenarioContext, session_id: str, messages: list[dict[str, str]], stream: bool
) -> bool:
    body = {"messages": messages, "stream": stream, "user": ctx.user_id, "session_id": session_id}
    start = time.perf_counter()
    with llmlens.context(session_id=session_id, user_id=ctx.user_id):
        try:
            async with ctx.client.stream("POST", "/api/chat", json=body) as response:
                status, ok = str(response.status_code), response.is_success
                async for line in response.aiter_lines():
                    if (
                        ok
                        and line.startswith("data: {")
                        and '"error"' in line
                        and "error" in json.loads(line[6:])
                    ):
                        status, ok = "stream_error", False
        except httpx.HTTPError as exc:
            status, ok = exc.__class__.__name__, False
    ctx.record(RequestResult(ctx.scenario, "/api/chat", status, ok, time.perf_counter() - start))
    return ok
