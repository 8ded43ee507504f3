"""The server keeps pyarrow from importing pandas (45 MB and 0.4 s of start-up per process), and
pandas still works for whoever asks for it. Each check runs in a fresh interpreter: this one may
have imported pandas already."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_the_server_and_its_workers_modules_leave_pandas_unloaded() -> None:
    out = run("import sys, pyarrow as pa\n"
              "import llmlens.server.app, llmlens.server.receive.workers\n"
              "pa.array(['a', 'b']); pa.table({'x': [1, 2]})\n"
              "print('pandas' in sys.modules)")
    assert out == "False"


def test_pandas_is_still_there_for_whoever_asks() -> None:
    out = run("import pyarrow as pa\n"
              "import llmlens.server\n"
              "frame = pa.table({'x': [1, 2]}).to_pandas()\n"
              "print(type(frame).__name__, pa.array(frame['x']).to_pylist())")
    assert out == "DataFrame [1, 2]"


def test_pandas_loaded_first_is_left_alone() -> None:
    out = run("import pandas, pyarrow as pa\n"
              "import llmlens.server\n"
              "print(pa.array(pandas.Series([3, 4])).to_pylist())")
    assert out == "[3, 4]"
