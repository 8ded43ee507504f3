"""Keep pyarrow from importing pandas, which no part of the server uses.

pyarrow looks for pandas once, on its first conversion of a Python sequence (`pa.array([...])`:
"is this a pandas object?"), and imports it if it is installed (chDB depends on it): about 45 MB
and 0.4 s of start-up in the server and in every ingest worker, measured with
benchmarks/server_footprint.py. Hiding pandas during that first look makes pyarrow remember
"no pandas" for the sequence check only: `Table.to_pandas()` and friends still import it when
called.
"""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec


class _HidePandas:
    """A meta path finder that says pandas is not installed."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if name == "pandas":
            raise ModuleNotFoundError("pandas is hidden from pyarrow's first look", name=name)
        return None


def keep_pandas_unloaded() -> None:
    """Make pyarrow's one look for pandas find none, unless pandas is already loaded."""
    if "pandas" in sys.modules:
        return
    hide = _HidePandas()
    sys.meta_path.insert(0, hide)
    try:
        import pyarrow as pa

        pa.array([0])  # pyarrow's first conversion of a list: it looks for pandas here, once
    finally:
        sys.meta_path.remove(hide)
