"""The server's one exception tree, and the one table that turns each kind into an HTTP status, a
gRPC status code and an API error code.

Raise the most specific kind inside (the decoder a PayloadError, the store a StoreError, a query a
BadParameter); the edges (OTLP/HTTP, OTLP/gRPC, the JSON API) map them through `answer()` and
nothing else, so the same failure gets the same answer on every transport.
"""

from __future__ import annotations

from dataclasses import dataclass

# gRPC status codes by number (grpc.StatusCode's values), so this module needs no grpc import.
_INVALID_ARGUMENT, _DEADLINE_EXCEEDED, _RESOURCE_EXHAUSTED, _INTERNAL, _UNAVAILABLE = 3, 4, 8, 13, 14


class ServerError(Exception):
    """Base of every error the server answers on purpose."""

    retry_after: float | None = None
    parameter: str | None = None


class BadRequest(ServerError, ValueError):
    """The client must change the request (HTTP 400, gRPC INVALID_ARGUMENT)."""


class PayloadError(BadRequest):
    """An OTLP or profile body cannot be decoded."""


class BadParameter(BadRequest):
    """An API parameter is invalid; `parameter` names it."""

    def __init__(self, parameter: str | None, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class SqlRefused(BadRequest):
    """A SQL statement that is not a read of the store (a write, DDL, a file or URL table function...)."""

    parameter = "query"  # the statement's field in the SQL API, by POST and GET alike


class SqlError(BadRequest):
    """ClickHouse refused a user's SQL statement (syntax, unknown column, readonly); `code` is its error code."""

    parameter = "query"

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class ResultTooLarge(ServerError):
    """A query's result is over the rows, bytes or memory it may take (HTTP 413)."""


class PayloadTooLarge(ServerError, ValueError):
    """The body, after decompression, is over the configured limit."""


class UnsupportedMedia(ServerError, ValueError):
    """Unknown content type or content encoding."""


class RequestTimeout(ServerError):
    """The client sent its request too slowly (HTTP 408)."""


class Overloaded(ServerError):
    """Too much is waiting (rows for the writer, bytes being decoded); retry after `retry_after` s."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(ServerError):
    """The server cannot take this now (store failing, disk full, a worker died); retry later."""

    def __init__(self, message: str, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreError(Unavailable):
    """The database refused or failed a statement."""


class StoreLocked(StoreError):
    """Another process already has this data directory open."""


class QueryTimeout(StoreError):
    """A read query ran past its time limit."""


@dataclass(frozen=True)
class Answer:
    http_status: int
    grpc_code: int
    code: str  # the API envelope's error code


# Most specific first: the first class the exception is an instance of wins.
ANSWERS: tuple[tuple[type[BaseException], Answer], ...] = (
    (BadParameter, Answer(400, _INVALID_ARGUMENT, "bad_parameter")),
    (SqlRefused, Answer(400, _INVALID_ARGUMENT, "sql_refused")),
    (SqlError, Answer(400, _INVALID_ARGUMENT, "sql_error")),
    (ResultTooLarge, Answer(413, _RESOURCE_EXHAUSTED, "result_too_large")),
    (BadRequest, Answer(400, _INVALID_ARGUMENT, "bad_request")),
    (PayloadTooLarge, Answer(413, _RESOURCE_EXHAUSTED, "payload_too_large")),
    (UnsupportedMedia, Answer(415, _INVALID_ARGUMENT, "unsupported_media_type")),
    (RequestTimeout, Answer(408, _DEADLINE_EXCEEDED, "request_timeout")),
    (Overloaded, Answer(429, _UNAVAILABLE, "overloaded")),
    (QueryTimeout, Answer(504, _DEADLINE_EXCEEDED, "query_timeout")),
    (StoreError, Answer(503, _UNAVAILABLE, "store_error")),
    (Unavailable, Answer(503, _UNAVAILABLE, "unavailable")),
)
_UNEXPECTED = Answer(500, _INTERNAL, "internal_error")


def answer(exc: BaseException) -> Answer:
    """How to answer `exc` on any transport (500/INTERNAL for anything not in the tree)."""
    for kind, found in ANSWERS:
        if isinstance(exc, kind):
            return found
    return _UNEXPECTED


def retry_after_header(exc: BaseException) -> dict[str, str] | None:
    """The Retry-After header for a retryable error (whole seconds, at least 1)."""
    seconds = getattr(exc, "retry_after", None)
    return None if seconds is None else {"Retry-After": str(max(1, int(round(seconds))))}
