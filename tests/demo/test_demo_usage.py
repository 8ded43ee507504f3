"""Every demo command's --help names the command the user typed, not a module path."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmlens.demo.commands import PIECES

COMMANDS = ["llm", *(piece[0] for piece in PIECES)]


def _help(*argv: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "llmlens.cli", *argv, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_piece_is_covered() -> None:
    assert set(COMMANDS) == {"llm", "retriever", "chatbot", "traffic", "chat"}


@pytest.mark.parametrize("command", COMMANDS)
def test_usage_names_the_real_command(command: str) -> None:
    text = _help("demo", command)
    assert text.startswith(f"usage: llmlens demo {command} "), text.splitlines()[0]
    assert "python -m" not in text


def test_a_bad_mock_flag_is_refused_under_its_real_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llmlens.cli", "demo", "llm", "--port", "eighty"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "llmlens demo llm: error: argument --port: invalid int value: 'eighty'" in result.stderr
