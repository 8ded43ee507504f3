"""tests/chdb_http_endpoint.py (ClickHouse's HTTP interface in front of chDB) as a process of its own.

A stand-in for a ClickHouse server, because no modern one installs on this machine: see the
endpoint's docstring for what it is and is not.
"""

from __future__ import annotations

import select
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]


class EndpointProcess:
    def __init__(self, data_dir: Path, *, user: str, password: str, extra_args: list[str] | None = None) -> None:
        self.user, self.password = user, password
        self.log_path = data_dir.parent / f"{data_dir.name}.endpoint.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 -- kept open for the process's life
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.chdb_http_endpoint", "--port", "0", "--data-dir", str(data_dir),
             "--user", user, "--password", password, *(extra_args or [])],
            cwd=REPO, stdout=subprocess.PIPE, stderr=self._log,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"endpoint did not start: {line!r}\n{self.log_path.read_text(errors='replace')}")
        self.address = line.split()[-1]

    def url(self, database: str) -> str:
        return f"http://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{self.address}/{database}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self._log.close()
