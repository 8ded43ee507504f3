"""The bytes of OTLP exports the server holds at once, bounded.

Without a bound, every concurrent sender's body sat in memory while it waited to be decoded (48
senders of 11 MB took the process past 1.8 GB). An export is counted by its body's size, from its
first byte read (its whole Content-Length up front when the client sent one) until it is answered:
after decoding, its batch waits in the writer's queue, which is bounded by rows, not bytes, and what
a commit costs in memory (the batches, and the database's own work on them) grows with the bytes in
it. Past the budget a new export is refused with Overloaded (HTTP 429, gRPC UNAVAILABLE, both with a
retry delay), which OTLP exporters retry."""

from __future__ import annotations

import threading
from types import TracebackType

from llmlens.server.errors import Overloaded

RETRY_AFTER_S = 1.0


class InflightBytes:
    """A byte budget shared by every receiver (HTTP and gRPC)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        return self._used

    def hold(self, size: int = 0) -> HeldBytes:
        """Hold `size` bytes for one body; raises Overloaded past the budget."""
        held = HeldBytes(self)
        held.resize(size)
        return held

    def _resize(self, held: HeldBytes, size: int) -> None:
        with self._lock:
            others = self._used - held.size
            # A body alone may exceed the budget (a limit below max_body_bytes must not refuse
            # everything); beside others it may not.
            if size > held.size and others > 0 and others + size > self.limit:
                raise Overloaded(f"too many bytes being received or decoded ({others} of {self.limit} "
                                 f"held by other exports); retry later", retry_after=RETRY_AFTER_S)
            self._used = others + size
            held.size = size


class HeldBytes:
    """One body's share of the budget; a context manager that gives it back on exit."""

    def __init__(self, budget: InflightBytes) -> None:
        self._budget = budget
        self.size = 0

    def resize(self, size: int) -> None:
        """Grow (raises Overloaded past the budget) or shrink what this body holds."""
        if size != self.size:
            self._budget._resize(self, size)

    def release(self) -> None:
        self.resize(0)

    def __enter__(self) -> HeldBytes:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
