"""Server settings: precedence, validation, and that secrets never show."""

from __future__ import annotations

import pytest

from llmlens.server.settings import SETTINGS, SettingsError, load_settings


def test_defaults_listen_on_loopback_standard_ports(tmp_path):
    """With nothing set, the server takes the standard OTLP ports on loopback."""
    s = load_settings(env={"XDG_DATA_HOME": str(tmp_path)})
    assert (s.host, s.http_port, s.grpc_port, s.retention_days) == ("127.0.0.1", 4318, 4317, 30)
    assert s.data_dir == str(tmp_path / "llmlens")
    assert s.backend == "chdb"


def test_flag_beats_env_beats_file(tmp_path):
    """Flags > LLMLENS_* environment > config file > default."""
    config = tmp_path / "llmlens.toml"
    config.write_text('[server]\nhttp_port = 5000\ngrpc_port = 5001\nretention_days = 7\n')
    s = load_settings({"http_port": 6000}, env={"LLMLENS_GRPC_PORT": "6001"}, config_file=str(config))
    assert (s.http_port, s.grpc_port, s.retention_days) == (6000, 6001, 7)


@pytest.mark.parametrize(("env", "needle"), [
    ({"LLMLENS_HTTP_PORT": "http"}, "http_port"),
    ({"LLMLENS_HTTP_PORT": "70000"}, "http_port"),
    ({"LLMLENS_HTTP_PORT": "4317"}, "differ"),
    ({"LLMLENS_RETENTION_DAYS": "0"}, "retention_days"),
    ({"LLMLENS_MASK_PII": "maybe"}, "mask_pii"),
    ({"LLMLENS_MAX_BODY_BYTES": "10"}, "max_body_bytes"),
    ({"LLMLENS_LOG_LEVEL": "loud"}, "log_level"),
    ({"LLMLENS_HOST": "0.0.0.0"}, "API key"),
    ({"LLMLENS_HOST": "0.0.0.0", "LLMLENS_API_KEY": "short"}, "16 characters"),
    ({"LLMLENS_CLICKHOUSE_URL": "tcp://x:9000"}, "clickhouse_url"),
])
def test_bad_values_name_the_setting(env, needle):
    """Every bad value fails at start-up with a message naming what to fix."""
    with pytest.raises(SettingsError, match=needle):
        load_settings(env=env)


def test_non_loopback_with_key_is_allowed():
    """Beyond loopback is fine once an API key is set."""
    s = load_settings(env={"LLMLENS_HOST": "0.0.0.0", "LLMLENS_API_KEY": "k" * 32})
    assert not s.loopback and s.api_key == "k" * 32


@pytest.mark.parametrize("text", ["[server\nport=", "[server]\nunknown_thing = 1\n", "server = 3\n"])
def test_bad_config_files(tmp_path, text):
    """A broken or unknown-key config file is refused with the file named."""
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(SettingsError, match="bad.toml"):
        load_settings(env={}, config_file=str(config))


def test_missing_config_file(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(env={}, config_file=str(tmp_path / "nope.toml"))


def test_secrets_are_masked_in_public_view():
    """The API key and a ClickHouse password never appear in what the server prints."""
    s = load_settings(env={"LLMLENS_API_KEY": "s3cret-s3cret-s3cret",
                           "LLMLENS_CLICKHOUSE_URL": "http://admin:hunter2@db:8123/llm"})
    shown = str(s.public())
    assert "s3cret" not in shown and "hunter2" not in shown
    assert "db:8123/llm" in shown


def test_every_setting_has_help_and_env_name():
    """The settings table generates the CLI flags and README rows; each needs a help line."""
    for setting in SETTINGS:
        assert setting.help and setting.env.startswith("LLMLENS_")
