"""The store's exceptions. The API and receivers turn these into HTTP/gRPC answers."""


class StoreError(RuntimeError):
    """The database refused or failed a statement."""


class StoreLocked(StoreError):
    """Another process already has this data directory open."""


class Overloaded(RuntimeError):
    """The write queue is full; the client should retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QueryTimeout(StoreError):
    """A read query ran past its time limit."""
