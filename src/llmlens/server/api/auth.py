"""Who may use the server when an API key is configured.

OTLP and API clients send the key as a bearer token. A browser logs in once at /login and then
carries a session cookie instead: an expiry time and an HMAC of it keyed by the API key, so the
key itself never sits in the browser and changing the key ends every session. The cookie counts
on GET and HEAD, and on other methods only when the browser says a page of this server sent the
request (Sec-Fetch-Site: same-origin, or an Origin naming this host: the Alerts page muting a
rule), so no cross-site form or script can spend it, besides SameSite.

Health probes stay open (orchestrators call them without credentials), and so do the login page
and the static assets. Without credentials, a page is redirected to /login?next=...; API, OTLP
and metrics paths answer a JSON 401.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote, urlsplit

from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from llmlens.server.api.errors import error_response
from llmlens.server.api.security import from_this_site

SESSION_COOKIE = "llmlens_session"
SESSION_SECONDS = 7 * 86400
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/login", "/logout"})
OPEN_PREFIXES = ("/static/",)
# Machine clients' paths: they get a JSON 401, never a redirect to a form.
API_PREFIXES = ("/api/", "/v1/", "/metrics", "/openapi.json",
                "/v1development/", "/ingest", "/pyroscope/", "/push.v1.")  # profile receivers
_SESSION_CONTEXT = b"llmlens ui session v1:"


def issue_session(api_key: str, now: float | None = None) -> str:
    """A session token valid for SESSION_SECONDS: `<expiry>.<hex HMAC-SHA256 of it under the key>`."""
    expires = int(now if now is not None else time.time()) + SESSION_SECONDS
    return f"{expires}.{_sign(api_key.encode(), expires)}"


def session_is_valid(api_key: bytes, token: str, now: float | None = None) -> bool:
    expires, _, signature = token.partition(".")
    if not expires.isdigit() or len(expires) > 12:
        return False
    # Compare before the expiry check, so that time does not tell a good signature from a bad one.
    good = hmac.compare_digest(signature.encode(), _sign(api_key, int(expires)).encode())
    return good and int(expires) > (now if now is not None else time.time())


def key_matches(api_key: str, candidate: str) -> bool:
    return hmac.compare_digest(candidate.encode(), api_key.encode())


def safe_next(raw: str | None) -> str:
    """Where to go after logging in: a path on this site, never another origin (an open redirect)."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    if any(ord(c) < 0x20 or c == "\x7f" for c in raw):
        return "/"
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc:
        return "/"
    return raw


def request_is_https(scope: Scope) -> bool:
    """Over HTTPS directly, or behind a proxy that says so (X-Forwarded-Proto: https)."""
    if scope.get("scheme") == "https":
        return True
    for name, value in scope.get("headers") or ():
        if name == b"x-forwarded-proto":
            return value.split(b",")[0].strip().lower() == b"https"
    return False


def _sign(api_key: bytes, expires: int) -> str:
    return hmac.new(api_key, _SESSION_CONTEXT + str(expires).encode(), hashlib.sha256).hexdigest()


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._expected = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_open(scope["path"]) or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if scope["method"] in ("GET", "HEAD") and not path.startswith(API_PREFIXES):
            raw_path = (scope.get("raw_path") or path.encode()).decode("latin-1")  # as sent: %2F stays
            query = scope.get("query_string", b"").decode("latin-1")
            target = raw_path + (f"?{query}" if query else "")
            response = RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        else:
            response = error_response(401, "unauthorized",
                                      "missing or wrong API key (send 'Authorization: Bearer <key>')",
                                      headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers") or ())
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer " and hmac.compare_digest(auth[7:].strip(), self._expected):
            return True
        if scope["method"] not in ("GET", "HEAD") and not from_this_site(headers):
            return False
        for part in headers.get(b"cookie", b"").split(b";"):
            name, _, value = part.strip().partition(b"=")
            if name == SESSION_COOKIE.encode():
                return session_is_valid(self._expected, value.decode("latin-1"))
        return False


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
