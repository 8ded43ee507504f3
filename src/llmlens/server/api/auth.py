"""Bearer-token check for OTLP and API requests when an API key is configured.

Health probes stay open (orchestrators call them without credentials). The UI's pages and
their API calls accept the key from the `llmlens_api_key` cookie too, set by /login.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from llmlens.server.api.errors import error_response

OPEN_PATHS = ("/healthz", "/readyz", "/login", "/static/")
COOKIE = "llmlens_api_key"


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._expected = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(OPEN_PATHS) or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        response = error_response(401, "unauthorized", "missing or wrong API key (send 'Authorization: Bearer <key>')",
                                  headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers") or ())
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer " and hmac.compare_digest(auth[7:].strip(), self._expected):
            return True
        for part in headers.get(b"cookie", b"").split(b";"):
            name, _, value = part.strip().partition(b"=")
            if name == COOKIE.encode() and hmac.compare_digest(value, self._expected):
                return True
        return False
