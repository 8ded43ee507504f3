"""Whether the embedded store's disk can take writes: free space above a floor, not read-only.

Checked before every insert (a statvfs, a few microseconds) and by /readyz. Below the floor the
store refuses writes with a StoreError (503 + Retry-After) before it tries them, so exports are
refused while there is still room to finish what was accepted, to merge parts and to write the
log; and it takes writes again by itself as soon as space returns.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from llmlens.server.errors import StoreError
from llmlens.server.store.outage import OutageLog

log = logging.getLogger("llmlens.store.disk")

# A full disk does not empty itself in a second: ask clients to wait longer than for a busy writer.
DISK_RETRY_AFTER_S = 10.0
_MIB = 1024 * 1024


class DiskFull(StoreError):
    """The data directory's disk is below the free-space floor or cannot be written."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=DISK_RETRY_AFTER_S)


class DiskWatch:
    """Free space and writability of a data directory, with the outage logged once."""

    def __init__(self, path: str | Path, min_free_bytes: int = 0) -> None:
        self.path = Path(path)
        self.min_free_bytes = int(min_free_bytes)
        self.outage = OutageLog(log, "the store refuses writes", "the store takes writes again")

    def problem(self) -> str | None:
        """Why the directory cannot take writes now, or None. Logs the start and end of an outage."""
        problem = self._find_problem()
        if problem is None:
            self.outage.ok()
        else:
            self.outage.failing(problem)
        return problem

    def check(self) -> None:
        """Raise DiskFull (a StoreError: 503 + Retry-After) when the directory cannot take writes."""
        problem = self.problem()
        if problem is not None:
            raise DiskFull(problem)

    def _find_problem(self) -> str | None:
        # chDB keeps tables under store/: a read-only mount of that folder alone counts too.
        paths = [p for p in (self.path, self.path / "store") if p.is_dir()] or [self.path]
        try:
            stats = [os.statvfs(p) for p in paths]
        except OSError as exc:
            return f"cannot read the data directory's disk: {exc.strerror or exc}"
        if any(st.f_flag & os.ST_RDONLY for st in stats):
            return "the data directory is on a read-only file system"
        if not all(os.access(p, os.W_OK) for p in paths):
            return "the data directory is not writable by this process"
        free = min(st.f_bavail * st.f_frsize for st in stats)
        if free < self.min_free_bytes:
            return (f"{free / _MIB:.1f} MiB free on the data directory's disk, below the floor of "
                    f"{self.min_free_bytes / _MIB:g} MiB (min_free_disk_mb)")
        return None
