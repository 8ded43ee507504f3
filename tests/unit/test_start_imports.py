"""The server's start path leaves pandas unloaded: pyarrow imports pandas (~0.3 s of CPU, ~45 MB) on
its first conversion of a list or scalar, so no module the server imports before ready may convert
one at import time (a constant Arrow array is made on first use instead). pandas is not hidden: it
loads once the server converts data. Checked in a fresh interpreter, as this one may hold pandas."""

from __future__ import annotations

import subprocess
import sys


def loaded_after(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def test_the_serve_path_and_the_worker_modules_import_without_pandas() -> None:
    modules = loaded_after("import llmlens.cli, llmlens.server.app, llmlens.server.run, "
                           "llmlens.server.receive.workers, llmlens.server.store.chdb_backend")
    assert "llmlens.server.app" in modules and "pyarrow" in modules  # the check would catch it
    assert "pandas" not in modules


def test_pandas_still_loads_for_the_first_conversion() -> None:
    modules = loaded_after("import llmlens.server.app, pyarrow as pa\npa.array(['a'])")
    assert "pandas" in modules
