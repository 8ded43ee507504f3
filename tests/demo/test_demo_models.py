"""Which models the demo asks for: the apps' mix with the mock, one model when one is chosen."""

from __future__ import annotations

import random
from pathlib import Path

import httpx

from llmlens.demo.apps import APPS, DEMO_MODELS
from llmlens.demo.orchestrator import service_specs
from llmlens.demo.scenarios import ScenarioContext
from llmlens.demo.settings import LOOPBACK, DemoSettings, choose_ports


def _chatbot_argv(**overrides: object) -> list[str]:
    settings = DemoSettings(host=LOOPBACK, ports=choose_ports(LOOPBACK, 20000, auto=False), data_dir=Path("d"),
                            duration=None, rate=1.0, concurrency=1, error_rate=0.0, scenarios=None,
                            **overrides)  # fmt: skip
    return list(service_specs(settings)["chatbot"].argv)


def test_the_mix_has_large_small_gateway_and_unpriced_models() -> None:
    assert len({app.name for app in APPS}) == len({app.department for app in APPS}) == 3
    assert all(app.model != app.large_model for app in APPS[:2])
    assert {"gpt-4o-mini", "gpt-4o", "anthropic/claude-haiku-4-5", "phi3"} <= set(DEMO_MODELS)
    assert DEMO_MODELS[0] == "gpt-4o-mini"  # the chatbot's default


def test_with_the_mock_the_chatbot_serves_the_whole_mix() -> None:
    argv = _chatbot_argv()
    assert argv[argv.index("--llm-model") + 1] == "gpt-4o-mini"
    assert argv[argv.index("--llm-models") + 1] == ",".join(DEMO_MODELS)


def test_one_chosen_model_is_served_alone() -> None:
    argv = _chatbot_argv(model="qwen2.5", models=("qwen2.5",))
    assert argv[argv.index("--llm-model") + 1] == "qwen2.5"
    assert "--llm-models" not in argv


def test_a_request_asks_for_its_apps_model_only_when_served() -> None:
    sales = next(app for app in APPS if app.department == "sales")
    ctx = ScenarioContext(httpx.AsyncClient(), random.Random(1), lambda _: None, "simple", sales, "rep-001",
                          frozenset(DEMO_MODELS))  # fmt: skip
    assert ctx.model() == "anthropic/claude-haiku-4-5"
    assert ctx.model(large=True) == "anthropic/claude-sonnet-4-5"
    alone = ScenarioContext(httpx.AsyncClient(), random.Random(1), lambda _: None, "simple", sales, "rep-001",
                            frozenset({"qwen2.5"}))  # fmt: skip
    assert alone.model() is None  # the chatbot's default, rather than a refused request
