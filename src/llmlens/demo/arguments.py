"""Command-line flags of every demo piece, kept free of heavy imports.

`llmlens --help` builds all parsers, so nothing here may import FAISS, openai or FastAPI; the
modules that do the work are imported only when their command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from llmlens.demo.apps import DEMO_MODELS
from llmlens.demo.settings import (
    DEFAULT_CHATBOT_PORT,
    DEFAULT_LLM_PORT,
    DEFAULT_RETRIEVER_PORT,
    LOOPBACK,
    SCENARIO_NAMES,
    default_data_dir,
    parse_scenarios,
)

DEMO_DESCRIPTION = (
    "Start the llmlens server on the embedded store, a mock OpenAI-compatible LLM, a retriever over "
    "bundled help-center articles, a RAG chatbot and a traffic generator, as separate processes that "
    "all report to the server. The traffic plays three apps (a support bot, a sales assistant, an IT "
    "helpdesk) with their departments, users, sessions and models, answered by the mock unless told "
    "otherwise. Prints the UI address and each service's address, runs until Ctrl-C (or --duration), "
    "then stops every process it started and says how to open its data again. Each piece also runs "
    "alone: see the subcommands."
)
RETRIEVER_HELP = (
    "Serve vector search over the bundled help-center articles (deterministic local embedding, FAISS "
    "inner-product index). POST /search {query, top_k, min_score}; GET /healthz; GET /metrics."
)
CHATBOT_HELP = (
    "Serve the RAG chatbot: POST /v1/chat {session_id, user_message} keeps history per session; "
    "POST /api/chat takes OpenAI-style messages and can stream (SSE). Each answer retrieves help-center "
    "chunks from the retriever, asks the LLM, and records a groundedness score. GET /metrics, GET /healthz."
)
TRAFFIC_HELP = (
    "Drive the chatbot with scenarios (simple questions, long requests, multi-turn sessions, bursts, "
    "error storms) at a chosen rate and concurrency, show progress, and print a summary at the end."
)
CHAT_HELP = (
    "Chat with the demo RAG chatbot in the terminal. The chatbot keeps the conversation per session; "
    "type /reset to start a new session and /quit (or Ctrl-D) to leave."
)


def _number(text: str, convert, expected: str, valid, rule: str):
    """Parse one command-line number; argparse shows the message next to the flag."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not valid(value):
        raise argparse.ArgumentTypeError(f"{rule}, got {text}")
    return value


def positive_float(text: str) -> float:
    return _number(text, float, "a number", lambda v: v > 0, "must be positive")


def positive_int(text: str) -> int:
    return _number(text, int, "a whole number", lambda v: v >= 1, "must be at least 1")


def fraction(text: str) -> float:
    return _number(text, float, "a number between 0 and 1", lambda v: 0.0 <= v <= 1.0, "must be between 0 and 1")


def scenario_weights(text: str) -> dict[str, float]:
    try:
        return parse_scenarios(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def model_list(text: str) -> tuple[str, ...]:
    models = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    if not models:
        raise argparse.ArgumentTypeError("expected model names separated by commas")
    return models


def add_service_arguments(parser: argparse.ArgumentParser, default_port: int) -> None:
    parser.add_argument("--host", default=LOOPBACK, help="interface to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=default_port, help="port to listen on (default: %(default)s)"
    )
    add_otlp_argument(parser)


def add_otlp_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--otlp-endpoint",
        default=None,
        help="llmlens server (OTLP/HTTP base URL) to send traces, logs and metrics to "
        "(default: $LLMLENS_DEMO_OTLP_ENDPOINT, else http://127.0.0.1:4318)",
    )


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by `llmlens demo` and `llmlens demo traffic`."""
    parser.add_argument(
        "--rate", type=positive_float, default=2.0, help="scenarios started per second (default: %(default)s)"
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=4,
        help="scenarios running at once, at most (default: %(default)s)",
    )
    parser.add_argument(
        "--duration",
        type=positive_float,
        default=None,
        help="seconds to run, then stop and sum up (default: until Ctrl-C)",
    )
    parser.add_argument(
        "--scenarios",
        type=scenario_weights,
        default=None,
        help="comma-separated scenarios with optional weights, e.g. simple:3,burst "
        f"(choose from {', '.join(SCENARIO_NAMES)}; default: a mix of all, storms rare)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="random seed, for a repeatable sequence of scenarios"
    )


def add_llm_arguments(
    parser: argparse.ArgumentParser,
    base_url_help: str,
    model_help: str = "model name (default: $LLMLENS_DEMO_LLM_MODEL, else gpt-4o-mini)",
) -> None:
    parser.add_argument("--llm-base-url", default=None, help=base_url_help)
    parser.add_argument(
        "--llm-api-key",
        default=None,
        help="its API key (default: $LLMLENS_DEMO_LLM_API_KEY, else $OPENAI_API_KEY)",
    )
    parser.add_argument("--llm-model", default=None, help=model_help)


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    add_load_arguments(parser)
    parser.add_argument(
        "--error-rate",
        type=fraction,
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
    add_llm_arguments(
        parser,
        "use this OpenAI-compatible endpoint instead of starting the mock LLM "
        "(default: $LLMLENS_DEMO_LLM_BASE_URL; $OPENAI_BASE_URL is deliberately not used here)",
        "one model for all traffic (default with the mock: the demo apps' mix of "
        f"{', '.join(DEMO_MODELS)}; with --llm-base-url: $LLMLENS_DEMO_LLM_MODEL, else gpt-4o-mini)",
    )


def add_retriever_arguments(parser: argparse.ArgumentParser) -> None:
    add_service_arguments(parser, DEFAULT_RETRIEVER_PORT)
    parser.add_argument(
        "--docs-dir", type=Path, default=None, help="folder of .md documents (default: bundled set)"
    )


def add_chatbot_arguments(parser: argparse.ArgumentParser) -> None:
    add_service_arguments(parser, DEFAULT_CHATBOT_PORT)
    parser.add_argument(
        "--retriever-url",
        default=f"http://{LOOPBACK}:{DEFAULT_RETRIEVER_PORT}",
        help="base URL of the retriever service (default: %(default)s)",
    )
    add_llm_arguments(
        parser,
        "OpenAI-compatible base URL, e.g. https://api.openai.com/v1 or http://localhost:11434/v1 (default: "
        f"$LLMLENS_DEMO_LLM_BASE_URL, else $OPENAI_BASE_URL, else the mock at http://{LOOPBACK}:{DEFAULT_LLM_PORT}/v1)",
    )
    parser.add_argument(
        "--llm-models",
        type=model_list,
        default=(),
        help="comma-separated models a request may ask for by name, besides --llm-model "
        "(default: only --llm-model; a request naming another model is refused)",
    )
    parser.add_argument(
        "--top-k", type=positive_int, default=4, help="chunks to retrieve per question (default: %(default)s)"
    )
    parser.add_argument(
        "--skip-llm-check",
        action="store_true",
        help="start even if the LLM endpoint does not answer GET /models",
    )


def add_traffic_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--chatbot-url",
        default=f"http://{LOOPBACK}:{DEFAULT_CHATBOT_PORT}",
        help="chatbot base URL (default: %(default)s)",
    )
    add_otlp_argument(parser)
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (the summary is still printed)"
    )
    add_load_arguments(parser)


def add_chat_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--chatbot-url",
        default=f"http://{LOOPBACK}:{DEFAULT_CHATBOT_PORT}",
        help="chatbot base URL (default: %(default)s)",
    )
    parser.add_argument("--session-id", default=None, help="continue a session (default: a new one)")
    parser.add_argument("--user-id", default="terminal-user", help="user id sent with each message")
