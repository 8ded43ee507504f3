"""`llmlens demo chat`: talk to the RAG chatbot from the terminal, one session per run."""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Sequence

import httpx
from rich.console import Console
from rich.markdown import Markdown

from llmlens.demo.arguments import CHAT_HELP, add_chat_arguments
from llmlens.demo.traffic import check_chatbot_reachable


def run(args: argparse.Namespace) -> int:
    console = Console()
    url = args.chatbot_url.rstrip("/")
    if problem := check_chatbot_reachable(url):
        print(f"error: {problem}", file=sys.stderr)
        return 1
    session_id = args.session_id or _new_session()
    console.print(f"Connected to {url}, session [bold]{session_id}[/]. /reset starts over, /quit leaves.")
    with httpx.Client(base_url=url, timeout=120.0) as client:
        while True:
            try:
                line = console.input("[bold green]you>[/] ").strip()
            except (EOFError, KeyboardInterrupt):
                console.print()
                return 0
            if line in ("/quit", "/exit"):
                return 0
            if line == "/reset":
                client.delete(f"/v1/chat/{session_id}")
                session_id = _new_session()
                console.print(f"new session [bold]{session_id}[/]")
            elif line:
                _ask(client, console, session_id, args.user_id, line)


def _ask(client: httpx.Client, console: Console, session_id: str, user_id: str, message: str) -> None:
    try:
        response = client.post(
            "/v1/chat", json={"session_id": session_id, "user_message": message, "user_id": user_id}
        )
    except httpx.HTTPError as exc:
        console.print(f"[red]request failed: {exc.__class__.__name__}: {exc}[/]")
        return
    if not response.is_success:
        console.print(f"[red]chatbot answered HTTP {response.status_code}: {response.text[:300]}[/]")
        return
    body = response.json()
    console.print("[bold blue]bot>[/]", Markdown(body["answer"] or "(empty answer)"))
    sources = ", ".join(f"{s['title']} ({s['score']:.2f})" for s in body["sources"]) or "none"
    console.print(f"[dim]sources: {sources} · groundedness {body['groundedness']:.2f}[/]")


def _new_session() -> str:
    return f"chat-{uuid.uuid4().hex[:12]}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmlens demo chat", description=CHAT_HELP)
    add_chat_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
