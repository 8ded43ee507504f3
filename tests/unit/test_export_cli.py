"""`llmlens export ...` at the command line: what it writes, and one clear line and exit 2 on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llmlens.cli import main


def _usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run argv, expect exit 2 and a single line on stderr; return that line."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err, err
    return err


def test_grafana_writes_the_export_and_lists_it(tmp_path: Path, capsys) -> None:
    out = tmp_path / "grafana"
    assert main(["export", "grafana", "--out", str(out), "--llmlens-url", "http://llmlens.test:4318"]) == 0
    listed = capsys.readouterr().out.split()
    assert sorted(listed) == sorted(str(p) for p in out.rglob("*") if p.is_file())
    assert len(listed) == 5
    datasources = yaml.safe_load((out / "provisioning" / "datasources" / "llmlens.yaml").read_text())
    url = datasources["datasources"][0]["jsonData"]["exemplarTraceIdDestinations"][0]["url"]
    assert url.startswith("http://llmlens.test:4318/traces/")


def test_prometheus_rules_go_to_standard_output_by_default(capsys) -> None:
    assert main(["export", "prometheus-rules"]) == 0
    rules = yaml.safe_load(capsys.readouterr().out)
    assert rules["groups"][0]["rules"]


def test_prometheus_rules_to_a_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "llmlens.rules.yml"
    assert main(["export", "prometheus-rules", "--out", str(path)]) == 0
    assert capsys.readouterr().out.strip() == str(path)
    assert yaml.safe_load(path.read_text())["groups"]


def test_export_without_a_command_shows_its_help(capsys) -> None:
    assert main(["export"]) == 2
    assert "grafana" in capsys.readouterr().out


def test_grafana_needs_out(capsys) -> None:
    assert "--out" in _usage_error(capsys, ["export", "grafana"])


def test_unknown_flags_are_refused(capsys, tmp_path: Path) -> None:
    assert "--bogus" in _usage_error(capsys, ["export", "grafana", "--out", str(tmp_path), "--bogus"])
    assert "--bogus" in _usage_error(capsys, ["export", "prometheus-rules", "--bogus"])


def test_a_password_in_the_clickhouse_url_is_refused_and_not_echoed(capsys, tmp_path: Path) -> None:
    err = _usage_error(capsys, ["export", "grafana", "--out", str(tmp_path / "g"),
                                "--clickhouse-url", "http://reader:hunter2-secret@ch:8123/db"])
    assert "--clickhouse-url must not hold a password" in err and "LLMLENS_CLICKHOUSE_PASSWORD" in err
    assert "hunter2" not in err
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize(("flag", "value"), [
    ("--prometheus-url", "prometheus:9090"), ("--llmlens-url", "not a url"),
    ("--clickhouse-url", "tcp://ch:9000"), ("--job", "two words"), ("--dashboards-path", "dashboards"),
])
def test_bad_values_name_their_flag(capsys, tmp_path: Path, flag: str, value: str) -> None:
    assert flag in _usage_error(capsys, ["export", "grafana", "--out", str(tmp_path / "g"), flag, value])


def test_out_that_is_a_file_is_refused(capsys, tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("")
    assert "is a file, not a folder" in _usage_error(capsys, ["export", "grafana", "--out", str(file)])
    err = _usage_error(capsys, ["export", "prometheus-rules", "--out", str(tmp_path)])
    assert "is a folder, not a file" in err


def test_unwritable_out_is_refused(capsys, tmp_path: Path) -> None:
    # Below a regular file nothing can be created, whoever runs the test (root included).
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    err = _usage_error(capsys, ["export", "grafana", "--out", str(blocker / "grafana")])
    assert err.startswith("llmlens: error: cannot write") and str(blocker) in err
    err = _usage_error(capsys, ["export", "prometheus-rules", "--out", str(blocker / "rules.yml")])
    assert err.startswith("llmlens: error: cannot write --out")


def test_without_the_export_extra_the_command_says_what_to_install(tmp_path: Path) -> None:
    """A missing library is not bad input: exit 1, one line naming the extra."""
    code = ("import sys; sys.modules['yaml'] = None; sys.modules['grafana_foundation_sdk'] = None\n"
            "from llmlens.cli import main\n"
            "sys.exit(main(['export', {}]))")
    for args in ("'prometheus-rules'", f"'grafana', '--out', {str(tmp_path / 'g')!r}"):
        result = subprocess.run([sys.executable, "-c", code.replace("{}", args)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1, result.stderr
        assert "pip install 'llmlens[export]'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "g").exists()


def test_the_installed_command_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "llmlens.cli", "export", "prometheus-rules"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "record: job_model:llm_request_duration_seconds:histogram_quantile" in result.stdout
