"""Refreshing the bundled price file from a LiteLLM price list (or the LiteLLM wheel that ships one)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import zipfile
from pathlib import Path

from .catalog import BUNDLED_FILE
from .litellm import dump_ours, is_ours, trim_litellm

# Inside the `litellm` wheel on PyPI; the repo-root copy has the same content.
WHEEL_MEMBER = "litellm/model_prices_and_context_window_backup.json"
_WHEEL_VERSION = re.compile(r"^litellm-([^-]+)-", re.IGNORECASE)


def update_price_file(
    source: str | Path,
    dest: str | Path | None = None,
    *,
    litellm_version: str | None = None,
) -> int:
    """Validate a LiteLLM-format price file, trim it and write it to `dest`; return the model count.

    `source` is LiteLLM's `model_prices_and_context_window.json` or a `litellm-*.whl` (the version
    is then read from the wheel's name). `dest` defaults to the bundled file. The write is atomic,
    and nothing is written if validation fails (ValueError naming the problem).
    """
    src = Path(source)
    raw, version = _read_source(src)
    version = litellm_version or version
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{src} is not valid JSON: {exc}") from exc
    if is_ours(data):
        raise ValueError(f"{src} is already an llmlens price file; give LiteLLM's original file")
    models = trim_litellm(data, str(src))
    meta = {
        "name": "LiteLLM model_prices_and_context_window.json",
        "license": "MIT",
        "litellm_version": version or "unknown",
        "sha256": hashlib.sha256(raw).hexdigest(),
    }
    target = Path(dest) if dest is not None else BUNDLED_FILE
    fd, tmp = tempfile.mkstemp(prefix=".prices-", suffix=".json", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(dump_ours(models, meta))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the file ships in the package
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(models)


def _read_source(src: Path) -> tuple[bytes, str | None]:
    try:
        if zipfile.is_zipfile(src):
            with zipfile.ZipFile(src) as wheel:
                try:
                    raw = wheel.read(WHEEL_MEMBER)
                except KeyError:
                    raise ValueError(
                        f"{src} is a zip without {WHEEL_MEMBER}; is it the litellm wheel?"
                    ) from None
            m = _WHEEL_VERSION.match(src.name)
            return raw, m.group(1) if m else None
        return src.read_bytes(), None
    except OSError as exc:
        raise ValueError(f"cannot read {src}: {exc.strerror or exc}") from exc
