"""Browser-facing hardening: which Host names the server answers, and the security headers on every
response.

Without an API key, anything that can reach the port can read every stored prompt. On loopback
that is the user's own machine, but a web page can reach it too by DNS rebinding (its name made
to resolve to 127.0.0.1): the browser then sends that page's name as Host. So with no key only
loopback names are answered, plus the names an operator allows for a reverse proxy in front.
With a key the key is the guard (a rebound page has neither it nor this origin's cookie), and
any Host is answered unless allowed hosts are set.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmlens.server.api.errors import error_response

# Same-origin everything; no inline script or style (the UI sets none), no framing, no plugins.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
# Probes carry no data, and orchestrators call them by whatever name reaches the container.
_UNCHECKED_PATHS = frozenset({"/healthz", "/readyz"})


def parse_allowed_hosts(raw: str | None) -> tuple[str, ...]:
    """`a.example.com, *.example.org, *` -> normalised names; `*.x` matches x's subdomains, `*` any.

    A URL given instead of a name (`https://llm.example.com/`) counts as its host name.
    """
    names = []
    for part in (raw or "").split(","):
        part = part.strip()
        if "://" in part:
            part = urlsplit(part).netloc.rsplit("@", 1)[-1]
        part = part.split("/", 1)[0]
        if part:
            names.append(host_name(part))
    return tuple(dict.fromkeys(names))


def host_name(host: str) -> str:
    """A Host header's name: lower case, without port, IPv6 brackets or a trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def is_loopback_name(name: str) -> bool:
    """localhost and its subdomains (resolved by the client itself, RFC 6761) and loopback addresses."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _origin_is_host(headers: Mapping[bytes, bytes]) -> bool:
    """The Origin header names the host the request was sent to (or a proxy in front says it was)."""
    origin = headers.get(b"origin", b"").decode("latin-1")
    netloc = urlsplit(origin).netloc.lower() if "://" in origin else ""
    hosts = (headers.get(b"host", b""), headers.get(b"x-forwarded-host", b"").split(b",")[0])
    return bool(netloc) and netloc in {h.decode("latin-1").strip().lower() for h in hosts if h.strip()}


def from_other_site(headers: Mapping[bytes, bytes]) -> bool:
    """A browser says a page of another origin sent this request (Sec-Fetch-Site, else Origin).
    Browsers set both headers themselves; a page cannot forge them. Other clients send neither."""
    site = headers.get(b"sec-fetch-site")
    if site is not None:
        return site not in (b"same-origin", b"none")
    return b"origin" in headers and not _origin_is_host(headers)


def from_this_site(headers: Mapping[bytes, bytes]) -> bool:
    """A browser says a page of this server sent this request (what a cookie may vouch for beyond GET)."""
    site = headers.get(b"sec-fetch-site")
    if site is not None:
        return site == b"same-origin"
    return _origin_is_host(headers)


class HostPolicy:
    """Which Host names are answered (see the module's docstring)."""

    def __init__(self, *, api_key_set: bool, allowed_hosts: tuple[str, ...] = ()) -> None:
        self.any_host = "*" in allowed_hosts or (api_key_set and not allowed_hosts)
        self.exact = frozenset(h for h in allowed_hosts if not h.startswith("*"))
        self.suffixes = tuple(h[1:] for h in allowed_hosts if h.startswith("*.") and len(h) > 2)

    @classmethod
    def of(cls, api_key: str | None, allowed_hosts: str | None) -> HostPolicy:
        return cls(api_key_set=bool(api_key), allowed_hosts=parse_allowed_hosts(allowed_hosts))

    def allows(self, name: str) -> bool:
        return (self.any_host or is_loopback_name(name) or name in self.exact
                or (bool(self.suffixes) and name.endswith(self.suffixes)))


class HostCheckMiddleware:
    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.policy.any_host or scope["path"] in _UNCHECKED_PATHS:
            await self.app(scope, receive, send)
            return
        host = next((value for name, value in scope.get("headers") or () if name == b"host"), None)
        # No Host at all is an HTTP/1.0 client, never a browser: nothing to rebind.
        if host is None or self.policy.allows(host_name(host.decode("latin-1"))):
            await self.app(scope, receive, send)
            return
        response = error_response(
            400, "host_not_allowed",
            "this server answers only loopback host names (localhost, 127.0.0.1, [::1]) when no API key "
            "is set; a reverse proxy's name goes in LLMLENS_ALLOWED_HOSTS", "Host")
        await response(scope, receive, send)


class SecurityHeadersMiddleware:
    """Adds SECURITY_HEADERS to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or ())
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
