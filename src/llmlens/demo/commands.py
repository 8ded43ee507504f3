"""The `llmlens demo` command family, registered into the main CLI by ``register(subparsers)``.

Every parser sets ``handler``: the CLI runs ``args.handler(args)`` and exits with its return value.
Modules are imported when a command runs, so `llmlens --help` stays fast and needs no demo extras.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from llmlens.demo.settings import LOOPBACK, default_data_dir

DEMO_HELP = "run the demo: llmlens server, mock LLM, retriever, RAG chatbot and traffic, all at once"
DEMO_DESCRIPTION = (
    "Start the llmlens server on the embedded store, a mock OpenAI-compatible LLM, a retriever over "
    "bundled help-center articles, a RAG chatbot and a traffic generator, as separate processes that "
    "all report to the server. Prints the UI address and each service's address, runs until Ctrl-C "
    "(or --duration), then stops every process it started. Each piece also runs alone: see the "
    "subcommands."
)


def register(subparsers: Any) -> None:
    """Add `demo` and its subcommands to an argparse subparsers object."""
    from llmlens.demo import chat_cli, chatbot, retriever, traffic

    demo = subparsers.add_parser(
        "demo",
        help=DEMO_HELP,
        description=DEMO_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_demo_arguments(demo)
    demo.set_defaults(handler=_run_demo)
    pieces = demo.add_subparsers(dest="demo_command", title="run one piece alone", metavar="PIECE")

    llm = pieces.add_parser(
        "llm",
        help="the mock OpenAI-compatible LLM (chat completions, streaming, embeddings, failure injection)",
        add_help=False,  # its own parser (in mock_llm) answers --help
    )
    llm.add_argument("mock_llm_args", nargs=argparse.REMAINDER, help="arguments for the mock LLM; try --help")
    llm.set_defaults(handler=_run_mock_llm)

    for name, module, summary, description in (
        (
            "retriever",
            retriever,
            "the retriever: vector search over the bundled articles",
            retriever.RETRIEVER_HELP,
        ),
        ("chatbot", chatbot, "the RAG chatbot API (any OpenAI-compatible LLM)", chatbot.CHATBOT_HELP),
        ("traffic", traffic, "the traffic generator that drives the chatbot", traffic.TRAFFIC_HELP),
        ("chat", chat_cli, "an interactive terminal chat with the chatbot", chat_cli.CHAT_HELP),
    ):
        piece = pieces.add_parser(name, help=summary, description=description)
        module.add_arguments(piece)
        piece.set_defaults(handler=module.run)


def _add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    from llmlens.demo.traffic import add_load_arguments

    add_load_arguments(parser)
    parser.add_argument(
        "--error-rate",
        type=_fraction,
        default=0.0,
        help="share of mock LLM calls answered with HTTP 500, 0..1 (default: %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"where the server stores data and the services write logs (default: {default_data_dir()})",
    )
    parser.add_argument(
        "--host", default=LOOPBACK, help="interface every service listens on (default: %(default)s)"
    )
    ports = parser.add_mutually_exclusive_group()
    ports.add_argument(
        "--base-port",
        type=int,
        default=None,
        help="use five consecutive ports from N: server HTTP, server gRPC, chatbot, retriever, mock LLM "
        "(default: 4318, 4317, 8700, 8701, 8702)",
    )
    ports.add_argument("--ports", choices=["auto"], default=None, help="'auto': let the OS pick free ports")
    parser.add_argument(
        "--llm-base-url",
        default=None,
        help="use this OpenAI-compatible endpoint instead of the mock LLM (also $LLMLENS_DEMO_LLM_BASE_URL)",
    )
    parser.add_argument(
        "--llm-api-key", default=None, help="its API key (also $LLMLENS_DEMO_LLM_API_KEY, $OPENAI_API_KEY)"
    )
    parser.add_argument(
        "--llm-model", default=None, help="model name (also $LLMLENS_DEMO_LLM_MODEL; default gpt-4o-mini)"
    )


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _run_demo(args: argparse.Namespace) -> int:
    import sys

    from llmlens.demo.orchestrator import EXIT_BAD_SETTINGS, run_demo
    from llmlens.demo.settings import DEFAULT_MODEL, DemoSettings, choose_ports, external_llm_from

    try:
        ports = choose_ports(args.host, args.base_port, auto=args.ports == "auto")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    data_dir = (args.data_dir or default_data_dir()).expanduser().resolve()
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
        external_llm=external_llm_from(args.llm_base_url, args.llm_api_key, args.llm_model),
        model=args.llm_model or DEFAULT_MODEL,
        log_dir=data_dir / "logs",
    )
    return run_demo(settings)


def _scenario_text(weights: dict[str, float] | None) -> str | None:
    if weights is None:
        return None
    return ",".join(f"{name}:{weight:g}" for name, weight in weights.items())


def _run_mock_llm(args: argparse.Namespace) -> int:
    from llmlens.demo import mock_llm

    result = mock_llm.main(args.mock_llm_args)
    return int(result or 0)
