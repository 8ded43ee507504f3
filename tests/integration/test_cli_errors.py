"""Bad flags, variables and files given to the `llmlens` command, as a hostile user would give them.

Each runs the real command in its own process and expects exit status 2, one line on stderr that
names the culprit (flag, variable or file), no traceback, and the store never opened; a failure
after the store has opened must still close it (an embedded store left open crashes the
interpreter at exit).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.server_process import free_port

API_KEY = "a-long-enough-test-api-key"


def llmlens(*args: str, cwd: Path, env: dict[str, str] | None = None, module: str = "llmlens.cli",
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`llmlens ARGS` in a clean environment: no LLMLENS_* of the caller, data under `cwd`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LLMLENS_")}
    environment.update({"XDG_DATA_HOME": str(cwd / "xdg"), "PYTHONUNBUFFERED": "1", **(env or {})})
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=cwd,
                          env=environment, timeout=timeout)


def assert_usage_error(result: subprocess.CompletedProcess[str], *names: str) -> str:
    """Exit 2, one line on stderr naming each of `names`, no traceback; returns the line."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == 2, (result.returncode, output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A folder of bad inputs."""
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "garbage.json").write_text("this is not json\n")
    (tmp_path / "negative.json").write_text(json.dumps({"models": {"my-model": {"input_per_million": -1,
                                                                                 "output_per_million": 1}}}))
    (tmp_path / "garbage.toml").write_text("[server\nhttp_port = \n")
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00\x01 not text at all")
    (tmp_path / "wrong-type.toml").write_text('[server]\nhttp_port = "abc"\n')
    (tmp_path / "unknown.toml").write_text("[server]\nhttp_prot = 4318\n")
    (tmp_path / "prices-in-config.toml").write_text('[server]\nprices_file = "/nonexistent.json"\n')
    (tmp_path / "a-file").write_text("not a folder\n")
    return tmp_path


def serve(files: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # Free ports, so that only the input under test can be wrong.
    return llmlens("serve", "--http-port", str(free_port()), "--grpc-port", "0", *args, cwd=files, env=env)


def assert_store_never_opened(files: Path) -> None:
    assert not (files / "xdg" / "llmlens").exists()


# --- serve: files ---------------------------------------------------------------------------

@pytest.mark.parametrize(("prices_file", "needles"), [
    ("/nonexistent.json", ["/nonexistent.json", "No such file"]),
    ("a-folder", ["a-folder", "Is a directory"]),
    ("garbage.json", ["garbage.json", "not valid JSON"]),
    ("negative.json", ["my-model", "input_per_million"]),
])
def test_bad_prices_file(files: Path, prices_file: str, needles: list[str]) -> None:
    line = assert_usage_error(serve(files, "--prices-file", prices_file), "--prices-file", *needles)
    assert line.startswith("llmlens: error: ")
    assert_store_never_opened(files)


def test_bad_prices_file_from_the_environment_names_the_variable(files: Path) -> None:
    assert_usage_error(serve(files, env={"LLMLENS_PRICES_FILE": "garbage.json"}), "LLMLENS_PRICES_FILE",
                       "garbage.json")
    assert_store_never_opened(files)


def test_bad_prices_file_from_the_config_file_names_the_config_file(files: Path) -> None:
    assert_usage_error(serve(files, "--config", "prices-in-config.toml"), "prices-in-config.toml",
                       "/nonexistent.json")
    assert_store_never_opened(files)


@pytest.mark.parametrize(("config", "needles"), [
    ("garbage.toml", ["garbage.toml", "not valid TOML"]),
    ("binary.toml", ["binary.toml", "UTF-8"]),
    ("a-folder", ["a-folder", "directory"]),
    ("/nonexistent.toml", ["/nonexistent.toml", "does not exist"]),
    ("unknown.toml", ["unknown.toml", "http_prot"]),
])
def test_bad_config_file(files: Path, config: str, needles: list[str]) -> None:
    assert_usage_error(serve(files, "--config", config), "config file", *needles)
    assert_store_never_opened(files)


def test_bad_value_in_the_config_file(files: Path) -> None:
    result = llmlens("serve", "--config", "wrong-type.toml", cwd=files)  # the file's port is the one used
    assert_usage_error(result, "http_port", "wrong-type.toml", "'abc'")


def test_bad_config_file_from_the_environment(files: Path) -> None:
    assert_usage_error(serve(files, env={"LLMLENS_CONFIG": "binary.toml"}), "config file binary.toml")


# --- serve: the data directory --------------------------------------------------------------

def test_data_dir_that_is_a_file(files: Path) -> None:
    assert_usage_error(serve(files, "--data-dir", "/etc/passwd"), "--data-dir", "/etc/passwd", "not a directory")


def test_data_dir_under_a_file(files: Path) -> None:
    assert_usage_error(serve(files, "--data-dir", str(files / "a-file" / "store")), "--data-dir",
                       "a-file/store", "Not a directory")


def test_data_dir_that_cannot_be_created(files: Path) -> None:
    assert_usage_error(serve(files, "--data-dir", "/proc/llmlens-store"), "--data-dir", "/proc/llmlens-store")


@pytest.fixture
def read_only_dir(tmp_path: Path):
    """A folder nobody can write in: a read-only tmpfs as root (root ignores mode bits), mode 0555 otherwise."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_data_dir_that_is_read_only(files: Path, read_only_dir: Path) -> None:
    line = assert_usage_error(serve(files, "--data-dir", str(read_only_dir)), "--data-dir", str(read_only_dir))
    assert "Read-only file system" in line or "Permission denied" in line


def test_default_data_dir_that_is_a_file(files: Path) -> None:
    (files / "xdg").mkdir()
    (files / "xdg" / "llmlens").write_text("a file where the default store folder goes\n")
    assert_usage_error(serve(files), "data_dir", "xdg/llmlens", "not a directory")


# --- serve: ports, host, other values -------------------------------------------------------

@pytest.mark.parametrize(("args", "needles"), [
    (["--http-port", "99999"], ["http_port", "99999"]),
    (["--http-port", "abc"], ["--http-port", "'abc'"]),
    (["--http-port", "4318", "--grpc-port", "-1"], ["grpc_port", "-1"]),
    (["--http-port", "4318", "--grpc-port", "4318"], ["http_port", "grpc_port"]),
    (["--retention-days", "0"], ["retention_days"]),
    (["--query-timeout-s", "nan"], ["query_timeout_s", "nan"]),
    (["--log-level", "shout"], ["log_level", "shout"]),
    (["--clickhouse-url", "http://"], ["--clickhouse-url", "ClickHouse URL"]),
    (["--clickhouse-url", "tcp://db:9000"], ["clickhouse_url"]),
    (["--no-such-flag"], ["--no-such-flag"]),
])
def test_bad_flag_values(files: Path, args: list[str], needles: list[str]) -> None:
    result = llmlens("serve", *args, cwd=files) if args[0] == "--http-port" else serve(files, *args)
    assert_usage_error(result, *needles)
    assert_store_never_opened(files)


def test_bad_value_from_the_environment(files: Path) -> None:
    assert_usage_error(llmlens("serve", cwd=files, env={"LLMLENS_HTTP_PORT": "eighty"}), "LLMLENS_HTTP_PORT",
                       "eighty")


@pytest.mark.parametrize(("host", "needle"), [
    ("no-such-host.invalid", "not an address, nor a name that resolves"),
    ("192.0.2.1", "not an address of this machine"),  # a documentation address, on no interface here
])
def test_host_that_cannot_be_listened_on(files: Path, host: str, needle: str) -> None:
    # Beyond loopback a key is required; with one, the address itself must be usable (binding sends nothing).
    result = serve(files, "--host", host, env={"LLMLENS_API_KEY": API_KEY})
    assert_usage_error(result, "--host", host, needle)
    assert_store_never_opened(files)


def test_port_in_use_is_a_failure_not_a_usage_error(files: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        result = llmlens("serve", "--http-port", str(taken), "--grpc-port", "0", cwd=files)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"llmlens: error: cannot listen on 127.0.0.1:{taken}: the port is in use; pick another with --http-port"]
    assert_store_never_opened(files)


def test_sql_port_in_use_is_a_failure_before_the_store_opens(files: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        result = llmlens("serve", "--http-port", str(free_port()), "--grpc-port", "0", "--sql-port", str(taken),
                         cwd=files)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"llmlens: error: cannot listen on 127.0.0.1:{taken}: the port is in use; pick another with --sql-port"]
    assert_store_never_opened(files)


# --- serve: a failure after the store has opened ------------------------------------------

def test_store_is_closed_when_serving_fails_after_it_opened(tmp_path: Path) -> None:
    """The HTTP server fails to start (here: injected) after the store opened: the store is closed,
    the process exits 1 rather than crashing in chDB at exit, and the folder opens again at once."""
    data_dir = tmp_path / "data"
    script = textwrap.dedent(f"""
        import sys
        import llmlens.server.run
        from llmlens.server.store import Store

        def broken_run_server(app, settings):
            raise RuntimeError("injected: the HTTP server failed to start")

        def reported_close(self, close=Store.close):
            close(self)
            print("store closed", file=sys.stderr)

        llmlens.server.run.run_server = broken_run_server
        Store.close = reported_close
        from llmlens.cli import main
        sys.exit(main(["serve", "--data-dir", {str(data_dir)!r}, "--http-port", "{free_port()}",
                       "--grpc-port", "0"]))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env={k: v for k, v in os.environ.items() if not k.startswith("LLMLENS_")})
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])  # not -11: no crash at exit
    assert "injected: the HTTP server failed to start" in result.stderr
    assert "store closed" in result.stderr.splitlines()
    reopen = textwrap.dedent(f"""
        from llmlens.server.store import Store, open_backend
        store = Store(open_backend(data_dir={str(data_dir)!r}), ttl_days=30, max_pending_rows=100000)
        store.close()
        print("reopened")
    """)
    again = subprocess.run([sys.executable, "-c", reopen], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout.strip() == "reopened", again.stderr[-2000:]


# --- pricing ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "needles"), [
    (["cost", "gpt-4o-mini", "--input-tokens", "-5"], ["--input-tokens", "'-5'"]),
    (["cost", "gpt-4o-mini", "--output-tokens", "lots"], ["--output-tokens", "'lots'"]),
    (["cost", "gpt-4o-mini", "--cached-input-tokens", "1.5"], ["--cached-input-tokens", "'1.5'"]),
    (["update", "--from", "/nonexistent.json"], ["--from", "/nonexistent.json", "No such file"]),
    (["update", "--from", "garbage.json", "--dest", "out.json"], ["--from", "garbage.json", "not valid JSON"]),
    (["update"], ["--from"]),
])
def test_bad_pricing_input(files: Path, args: list[str], needles: list[str]) -> None:
    assert_usage_error(llmlens("pricing", *args, cwd=files), *needles)
    assert not (files / "out.json").exists()


def test_pricing_update_to_an_unwritable_destination(files: Path) -> None:
    (files / "litellm.json").write_text(json.dumps({"gpt-x": {
        "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6, "litellm_provider": "openai", "mode": "chat"}}))
    result = llmlens("pricing", "update", "--from", "litellm.json", "--dest", "/nonexistent-folder/prices.json",
                     cwd=files)
    assert_usage_error(result, "--dest", "/nonexistent-folder/prices.json")
    assert llmlens("pricing", "update", "--from", "litellm.json", "--dest", "ok.json", cwd=files).returncode == 0
    assert json.loads((files / "ok.json").read_text())["models"]  # the same source works with a good --dest


def test_pricing_with_bad_overrides_in_the_environment(files: Path) -> None:
    result = llmlens("pricing", "cost", "gpt-4o-mini", "--input-tokens", "5", cwd=files,
                     env={"LLMLENS_PRICES_FILE": "negative.json"})
    assert_usage_error(result, "LLMLENS_PRICES_FILE", "input_per_million")


def test_pricing_cost_still_prices_good_input(files: Path) -> None:
    result = llmlens("pricing", "cost", "gpt-4o-mini", "--input-tokens", "1000000", cwd=files)
    assert result.returncode == 0 and result.stdout.strip() == "0.15000000 USD", result.stderr


def test_python_m_llmlens_pricing_rejects_negative_counts(files: Path) -> None:
    result = llmlens("cost", "gpt-4o-mini", "--input", "-5", cwd=files, module="llmlens.pricing")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("argument --input: must be a whole number >= 0, got '-5'")
    result = llmlens("update", "garbage.json", "--dest", "out.json", cwd=files, module="llmlens.pricing")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "garbage.json" in result.stderr


def test_unknown_command(files: Path) -> None:
    assert_usage_error(llmlens("serv", cwd=files), "'serv'", "invalid choice")
