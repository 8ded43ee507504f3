"""The parts of ClickHouse's HTTP protocol that do not depend on a server: what a request carries
(SQL, data, settings, query parameters, credentials), body decoding, and how answers and errors
look. Used by the read-only interface (clickhouse_http.py) and the tests' stand-in ClickHouse
server, so both read requests as a ClickHouse server does.

A request: the SQL in the `query` URL parameter and/or the body (the body continues the query);
`database`, `default_format`, `query_id`, `param_<name>` (server-side binding of `{name:Type}`)
and any other URL parameter is a setting of the query. Credentials, as ClickHouse takes them:
HTTP basic auth, the `X-ClickHouse-User`/`X-ClickHouse-Key` headers, or `user`/`password`
parameters. Errors are `Code: N. DB::Exception: ...` bodies with `X-ClickHouse-Exception-Code`.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

# URL parameters the HTTP layer consumes itself; every other one is a setting of the query.
TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "query_id", "user", "password", "quota_key",
    "session_id", "session_timeout", "session_check", "compress", "decompress", "buffer_size",
    "wait_end_of_query", "client_protocol_version", "role", "enable_http_compression",
    "send_progress_in_http_headers", "http_headers_progress_interval_ms", "stacktrace", "close_session",
})
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

UNSUPPORTED_METHOD = 1
SYNTAX_ERROR = 62
UNKNOWN_TABLE = 60
UNKNOWN_DATABASE = 81
UNKNOWN_SETTING = 115
READONLY = 164
DATABASE_ACCESS_DENIED = 291
ACCESS_DENIED = 497
AUTHENTICATION_FAILED = 516
STD_EXCEPTION = 1001
# HTTP statuses a ClickHouse server gives these exception codes (its HTTPHandler's mapping); others are 500.
HTTP_STATUS = {AUTHENTICATION_FAILED: 401, READONLY: 403, ACCESS_DENIED: 403, DATABASE_ACCESS_DENIED: 403,
               SYNTAX_ERROR: 400, UNKNOWN_SETTING: 400, UNKNOWN_TABLE: 404, UNKNOWN_DATABASE: 404, 47: 404,
               46: 404}


class ClickHouseError(Exception):
    """An error to answer as a server would: `Code: N. DB::Exception: ...`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Request:
    sql: str
    params: dict[str, str]
    data: bytes = b""
    settings: dict[str, str] = field(default_factory=dict)
    query_params: dict[str, str] = field(default_factory=dict)


def parse_request(method: str, query_string: str, body: bytes) -> Request:
    """The URL's query string and the body of one HTTP request -> the SQL, data and settings it carries."""
    params = dict(parse_qsl(query_string, keep_blank_values=True))
    query = params.get("query", "")
    if method == "GET" or query:
        sql, data = query, body
    else:
        sql, data = _text(body), b""
    settings, query_params = {}, {}
    for name, value in params.items():
        if name.startswith("param_"):
            query_params[name.removeprefix("param_")] = value
        elif name not in TRANSPORT_PARAMS:
            if not _SETTING_NAME.match(name):
                raise ClickHouseError(UNKNOWN_SETTING, f"Unknown setting '{name[:100]}'. (UNKNOWN_SETTING)")
            settings[name] = value
    return Request(sql=sql, params=params, data=data, settings=settings, query_params=query_params)


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise ClickHouseError(SYNTAX_ERROR, "the query is not valid UTF-8. (SYNTAX_ERROR)") from None


def full_sql(request: Request) -> str:
    """The query with the body appended (as a server reads a GET's body or a POST with query=)."""
    if not request.data:
        return request.sql
    body = _text(request.data)
    return f"{request.sql}\n{body}" if request.sql else body


def decode_body(body: bytes, encoding: str | None, max_bytes: int | None = None) -> bytes:
    """A request body after its Content-Encoding; over `max_bytes` decoded is an error, not a bomb."""
    encoding = (encoding or "").strip().lower()
    if not encoding or encoding == "identity":
        decoded = body
    elif encoding in ("gzip", "deflate"):
        inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
        try:
            decoded = inflater.decompress(body, max_bytes + 1 if max_bytes else 0)
        except (zlib.error, gzip.BadGzipFile) as exc:
            raise ClickHouseError(STD_EXCEPTION, f"cannot decode the {encoding} body: {exc}") from None
    elif encoding == "lz4":
        import lz4.frame

        decoded = lz4.frame.decompress(body)
    else:
        raise ClickHouseError(UNSUPPORTED_METHOD, f"unsupported Content-Encoding {encoding!r}: send identity, "
                                                  "gzip, deflate or lz4")
    if max_bytes is not None and len(decoded) > max_bytes:
        raise ClickHouseError(STD_EXCEPTION, f"the request body is over {max_bytes} bytes")
    return decoded


def credentials(headers: Mapping[str, str], params: Mapping[str, str]) -> tuple[str, str]:
    """(user, password) as ClickHouse reads them; basic auth wins over the headers, the headers over the URL."""
    user, password = params.get("user", "default"), params.get("password", "")
    if headers.get("x-clickhouse-user") or headers.get("x-clickhouse-key"):
        user, password = headers.get("x-clickhouse-user") or "default", headers.get("x-clickhouse-key", "")
    auth = headers.get("authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            user, _, password = base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ClickHouseError(AUTHENTICATION_FAILED, "the Authorization header is not valid basic auth. "
                                                         "(AUTHENTICATION_FAILED)") from None
    return user, password


def authentication_failed(user: str) -> ClickHouseError:
    return ClickHouseError(AUTHENTICATION_FAILED, f"{user[:100]}: Authentication failed: password is incorrect, "
                                                  "or there is no user with such name. (AUTHENTICATION_FAILED)")


def error_body(exc: ClickHouseError, version: str) -> bytes:
    return f"Code: {exc.code}. DB::Exception: {exc} (version {version})\n".encode()


def content_type(fmt: str) -> str:
    lowered = fmt.lower()
    if lowered.startswith("json"):
        return "application/json; charset=UTF-8"
    if lowered.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if lowered.startswith("csv"):
        return "text/csv; charset=UTF-8"
    return "application/octet-stream"
