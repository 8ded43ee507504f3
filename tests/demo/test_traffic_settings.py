"""Scenario and load settings: good values parse, bad ones fail with a message naming the problem."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmlens.demo.scenarios import SCENARIOS
from llmlens.demo.settings import SCENARIO_NAMES, parse_scenarios
from llmlens.demo.traffic import TrafficSettings


def test_scenario_list_with_and_without_weights() -> None:
    assert parse_scenarios("simple,burst:2.5, multi_turn") == {"simple": 1.0, "burst": 2.5, "multi_turn": 1.0}


def test_every_issue_scenario_exists() -> None:
    assert set(SCENARIOS) == set(SCENARIO_NAMES) == {"simple", "long", "multi_turn", "burst", "error_storm"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("simple,typo", "unknown scenario 'typo'; choose from simple, long, multi_turn, burst, error_storm"),
        ("burst:lots", "weight of scenario 'burst' must be a number"),
        ("burst:0", "must be positive"),
        (" , ", "no scenario given"),
    ],
)
def test_bad_scenarios_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_scenarios(text)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0.0}, "rate must be positive"),
        ({"concurrency": 0}, "concurrency"),
        ({"duration": -1.0}, "duration"),
    ],
)
def test_bad_load_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    values = {"chatbot_url": "http://127.0.0.1:1", "rate": 1.0, "concurrency": 1, "duration": None} | kwargs
    with pytest.raises(ValueError, match=message):
        TrafficSettings(**values)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scenarios", "simple,nope"], "unknown scenario 'nope'"),
        (["traffic", "--scenarios", "nope"], "unknown scenario 'nope'"),
        (["--rate", "-2"], "argument --rate: must be positive"),
        (["--concurrency", "two"], "argument --concurrency: expected a whole number"),
        (["--error-rate", "1.5"], "argument --error-rate: must be between 0 and 1"),
        (["--base-port", "70000"], "--base-port must be between 1 and"),
        (["--base-port", "9000", "--ports", "auto"], "not allowed with argument"),
    ],
)
def test_command_line_refuses_bad_values(argv: list[str], message: str) -> None:
    """Nothing is started: the command exits non-zero at once and says what is wrong."""
    result = subprocess.run(
        [sys.executable, "-m", "llmlens.demo", *argv], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
