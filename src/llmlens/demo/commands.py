"""The `llmlens demo` command family, registered into the main CLI by ``register(subparsers)``.

Every parser sets ``handler``: the CLI runs ``args.handler(args)`` and exits with its return value.
Modules that do the work are imported only when their command runs, so `llmlens --help` stays
fast and works without the demo extras.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from typing import Any

from llmlens.demo import arguments
from llmlens.demo.apps import DEMO_MODELS
from llmlens.demo.settings import (
    DEFAULT_MODEL,
    DemoSettings,
    choose_ports,
    default_data_dir,
    external_llm_from,
)

MOCK_SERVICE_NAME = "demo-mock-llm"
DEMO_HELP = "run the demo: llmlens server, mock LLM, retriever, RAG chatbot and traffic, all at once"
# (name, short help, description, adds the flags, module whose run(args) does the work)
PIECES = (
    ("retriever", "the retriever: vector search over the bundled articles", arguments.RETRIEVER_HELP,
     arguments.add_retriever_arguments, "retriever"),
    ("chatbot", "the RAG chatbot API (any OpenAI-compatible LLM)", arguments.CHATBOT_HELP,
     arguments.add_chatbot_arguments, "chatbot"),
    ("traffic", "the traffic generator that drives the chatbot", arguments.TRAFFIC_HELP,
     arguments.add_traffic_arguments, "traffic"),
    ("chat", "an interactive terminal chat with the chatbot", arguments.CHAT_HELP,
     arguments.add_chat_arguments, "chat_cli"),
)  # fmt: skip


def register(subparsers: Any) -> None:
    """Add `demo` and its subcommands to an argparse subparsers object."""
    demo = subparsers.add_parser("demo", help=DEMO_HELP, description=arguments.DEMO_DESCRIPTION)
    arguments.add_demo_arguments(demo)
    demo.set_defaults(handler=_run_demo)
    pieces = demo.add_subparsers(dest="demo_command", title="run one piece alone", metavar="PIECE")

    llm = pieces.add_parser(
        "llm",
        help="the mock OpenAI-compatible LLM (chat completions, streaming, embeddings, failure injection)",
        add_help=False,  # the mock's own parser answers --help
        # Every argument, dashes included, goes to the mock's parser untouched: with "+" as the only
        # prefix, "--port" is a plain positional here (argparse.REMAINDER fails on a leading option).
        prefix_chars="+",
    )
    llm.add_argument("mock_llm_args", nargs="*", help="arguments for the mock LLM; try --help")
    # The mock's parser is told the command it runs under, so its usage line says `llmlens demo llm`.
    llm.set_defaults(handler=_run_mock_llm, mock_llm_prog=llm.prog)

    for name, summary, description, add_arguments, module in PIECES:
        piece = pieces.add_parser(name, help=summary, description=description)
        add_arguments(piece)
        piece.set_defaults(handler=functools.partial(_run_module, module))


def _run_module(module: str, args: argparse.Namespace) -> int:
    return int(importlib.import_module(f"llmlens.demo.{module}").run(args))


def _run_demo(args: argparse.Namespace) -> int:
    from llmlens.demo.orchestrator import EXIT_BAD_SETTINGS, run_demo

    try:
        ports = choose_ports(args.host, args.base_port, auto=args.ports == "auto")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    data_dir = (args.data_dir or default_data_dir()).expanduser().resolve()
    external = external_llm_from(args.llm_base_url, args.llm_api_key, args.llm_model)
    model = external.model if external else args.llm_model or DEFAULT_MODEL
    settings = DemoSettings(
        host=args.host,
        ports=ports,
        data_dir=data_dir,
        duration=args.duration,
        rate=args.rate,
        concurrency=args.concurrency,
        error_rate=args.error_rate,
        scenarios=_scenario_text(args.scenarios),
        seed=args.seed,
        external_llm=external,
        model=model,
        # The mock serves the whole mix of demo models, unless one model was asked for.
        models=(model,) if args.llm_model or external else DEMO_MODELS,
        log_dir=data_dir / "logs",
    )
    return run_demo(settings)


def _scenario_text(weights: dict[str, float] | None) -> str | None:
    if weights is None:
        return None
    return ",".join(f"{name}:{weight:g}" for name, weight in weights.items())


def _run_mock_llm(args: argparse.Namespace) -> int:
    """The mock LLM as a demo service: same server, plus telemetry so it joins the chatbot's traces."""
    from llmlens.demo import mock_llm
    from llmlens.demo.runtime import exit_cleanly_on_signals, start_telemetry, stop_telemetry
    from llmlens.demo.settings import port_is_free

    parsed = mock_llm.parse_args(args.mock_llm_args, args.mock_llm_prog)  # answers --help and refuses bad flags first
    if not port_is_free(parsed.host, parsed.port):
        print(
            f"error: {MOCK_SERVICE_NAME}: port {parsed.port} on {parsed.host} is already in use",
            file=sys.stderr,
        )
        return 2
    start_telemetry(MOCK_SERVICE_NAME, None)  # endpoint: $LLMLENS_DEMO_OTLP_ENDPOINT, set by `llmlens demo`
    exit_cleanly_on_signals()
    try:
        return int(mock_llm.main(args.mock_llm_args, args.mock_llm_prog) or 0)
    finally:
        stop_telemetry()
