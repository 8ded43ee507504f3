"""Checks of what a user hands `llmlens serve` (files, folders, addresses), before anything is opened.

Each check raises `UsageError` with one line that names the flag, environment variable or config
file the bad value came from. They run before the store is opened: a process that opens the
embedded store must close it before exiting, and the simplest way to keep that promise on bad
input is not to open it at all.
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class UsageError(Exception):
    """Bad input from the user: the CLI prints the message as one line and exits 2."""


def origin(key: str, flags: Mapping[str, Any], config_file: str | None) -> str:
    """Where setting `key` got its value, for messages: its flag, variable, config file or default."""
    from llmlens.server.settings import SETTINGS

    setting = next(s for s in SETTINGS if s.key == key)
    if flags.get(key) is not None:
        return setting.flag
    if os.environ.get(setting.env):
        return setting.env
    if config_file and setting.name in _config_table(config_file, setting.section):
        return f"{setting.name} in config file {config_file}"
    return f"the default {setting.name}"


def _config_table(path: str, section: str) -> dict[str, Any]:
    try:  # already read and checked by load_settings(); read again only to name a value's origin
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, ValueError):
        return {}
    if not any(isinstance(v, dict) for v in data.values()):
        data = {"server": data}
    table = data.get(section)
    return table if isinstance(table, dict) else {}


def check_config_file(path: str | None) -> None:
    """What settings' own reading reports badly: a folder, or bytes that are not UTF-8 text."""
    if not path:
        return
    file = Path(path)
    if file.is_dir():
        raise UsageError(f"config file {path} is a directory, not a TOML file")
    try:
        file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"config file {path} is not UTF-8 text (byte {exc.start}): is it a TOML file?") from None
    except OSError:
        return  # does not exist, unreadable: load_settings() says so in its own words


def check_prices_file(path: str | None, source: str) -> None:
    """Load the overrides once, as the server will: every mistake is named before the store opens."""
    if not path:
        return
    from llmlens.pricing.overrides import load_overrides

    try:
        load_overrides(path)
    except ValueError as exc:
        raise UsageError(f"bad {source}: {exc}") from None


def check_data_dir(path: str, source: str) -> None:
    """The embedded store's folder exists (or can be made) and takes a file."""
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"bad {source}: {folder} exists and is not a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(f"bad {source}: cannot write in {folder}: {exc.strerror or exc}") from None


def check_clickhouse_url(url: str | None, source: str) -> None:
    """The URL's shape (the server is reached later: an unreachable one is not a usage error)."""
    if not url:
        return
    from llmlens.server.errors import StoreError
    from llmlens.server.store.clickhouse_backend import ClickHouseTarget

    try:
        ClickHouseTarget.parse(url)
    except StoreError as exc:
        raise UsageError(f"bad {source}: {exc}") from None


class PortInUse(Exception):
    """The address is fine but another process listens there (not a usage error: exit 1)."""


def check_listen(host: str, port: int, port_flag: str) -> None:
    """Bind and release host:port: a bad host is a UsageError, a busy port is PortInUse."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(f"bad --host {host}: not an address, nor a name that resolves ({exc})") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(f"cannot listen on {host}:{port}: the port is in use; pick another with "
                                f"{port_flag}") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise UsageError(f"bad --host {host}: not an address of this machine") from None
            if exc.errno == errno.EACCES:
                raise UsageError(f"bad {port_flag} {port}: not allowed to listen on it "
                                 "(ports below 1024 need privileges)") from None
            raise UsageError(f"cannot listen on {host}:{port} ({port_flag}): {exc.strerror or exc}") from None
