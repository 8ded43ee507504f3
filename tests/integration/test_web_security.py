"""Web hardening on real server processes: the Host check (DNS rebinding), security headers on every
answer, the login page and its session cookie, and the API reference served without a CDN."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmlens.server.api.auth import SESSION_COOKIE, issue_session
from tests.integration.otlp_requests import make_span, post, trace_request
from tests.server_process import ServerProcess

API_KEY = "a-long-enough-test-api-key"
HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def start(tmp_path_factory: pytest.TempPathFactory, name: str, **kwargs) -> ServerProcess:
    return ServerProcess(tmp_path_factory.mktemp(name) / "data", **kwargs).start()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """No key, loopback: the default a developer runs."""
    server = start(tmp_path_factory, "open")
    yield server
    server.kill()


@pytest.fixture(scope="module")
def proxied_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """No key, behind a reverse proxy that forwards its public names."""
    server = start(tmp_path_factory, "proxied", env={"LLMLENS_ALLOWED_HOSTS": "llm.example.com,*.corp.example"})
    yield server
    server.kill()


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A key, listening beyond loopback."""
    server = start(tmp_path_factory, "keyed", extra_args=["--host", "0.0.0.0"], env={"LLMLENS_API_KEY": API_KEY})
    yield server
    server.kill()


def get(server: ServerProcess, path: str, **headers: str) -> httpx.Response:
    return httpx.get(server.url + path, headers={k.replace("_", "-"): v for k, v in headers.items()}, timeout=30)


# -- the Host check ------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["localhost:4318", "127.0.0.1:4318", "[::1]:4318", "localhost", "ui.localhost:80"])
def test_loopback_host_names_are_answered_without_a_key(open_server: ServerProcess, host: str) -> None:
    """What OTLP exporters and browsers on this machine send, with any port."""
    assert get(open_server, "/api/v1/status", host=host).status_code == 200
    assert get(open_server, "/", host=host).status_code == 200
    assert post(open_server.url, "traces", trace_request([make_span("via " + host)]),
                headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:4318", "localhost.evil.example", "10.1.2.3:4318",
                                  "llm.example.com"])
def test_other_host_names_are_refused_without_a_key(open_server: ServerProcess, host: str) -> None:
    """A page rebound to 127.0.0.1 sends its own name: it reads nothing and stores nothing."""
    for path in ("/", "/api/v1/traces", "/api/v1/status", "/openapi.json", "/docs"):
        answer = get(open_server, path, host=host)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["error"]["code"] == "host_not_allowed"
        assert "LLMLENS_ALLOWED_HOSTS" in answer.json()["error"]["message"]
    spans_before = open_server.status()["spans"]
    assert post(open_server.url, "traces", trace_request([make_span("rebound")]),
                headers={"host": host}).status_code == 400
    assert open_server.status()["spans"] == spans_before
    assert get(open_server, "/healthz", host=host).status_code == 200  # probes carry no data


def test_allowed_hosts_open_a_reverse_proxys_names(proxied_server: ServerProcess) -> None:
    for host in ("llm.example.com", "LLM.example.com:443", "a.corp.example", "localhost:4318"):
        assert get(proxied_server, "/api/v1/status", host=host).status_code == 200, host
    for host in ("corp.example", "evil.example", "llm.example.com.evil.example"):
        assert get(proxied_server, "/api/v1/status", host=host).status_code == 400, host


def test_with_a_key_any_host_is_answered_and_the_key_decides(keyed_server: ServerProcess) -> None:
    """On 0.0.0.0 clients reach the server by any name; without the key they still get nothing."""
    bearer = f"Bearer {API_KEY}"
    for host in ("llmlens.internal:4318", "10.1.2.3", "evil.example"):
        assert get(keyed_server, "/api/v1/status", host=host, authorization=bearer).status_code == 200
        assert get(keyed_server, "/api/v1/status", host=host).status_code == 401
    assert post(keyed_server.url, "traces", trace_request([make_span("by name")]),
                headers={"host": "llmlens.internal:4318", "authorization": bearer}).status_code == 200


# -- security headers ----------------------------------------------------------------------------

def test_every_answer_carries_the_security_headers(open_server: ServerProcess, keyed_server: ServerProcess) -> None:
    answers = {
        "page": get(open_server, "/traces"),
        "api": get(open_server, "/api/v1/status"),
        "static": get(open_server, "/static/js/traces.js"),
        "not found": get(open_server, "/api/v1/nope"),
        "bad host": get(open_server, "/", host="evil.example"),
        "401": get(keyed_server, "/api/v1/status"),
        "login": get(keyed_server, "/login"),
    }
    for what, answer in answers.items():
        for name, value in HEADERS.items():
            assert answer.headers.get(name) == value, (what, name)
        csp = answer.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'", what
        assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'", what
        assert "unsafe" not in csp, what


def test_pages_hold_no_inline_script_style_or_handler(open_server: ServerProcess) -> None:
    """What a strict CSP would block: none of it in any page the server renders."""
    trace_id = "0" * 31 + "1"
    for path in ("/", "/traces", f"/traces/{trace_id}", "/sessions", "/sessions/s-1", "/logs", "/costs", "/docs"):
        html = get(open_server, path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path  # every script is a file
        assert not re.search(r"\s(style|on[a-z]+)\s*=", html), path
        assert "<style" not in html, path
    for path in ("/static/css/app.css",):
        assert get(open_server, path).status_code == 200


def test_api_reference_is_served_here_without_a_cdn(open_server: ServerProcess) -> None:
    html = get(open_server, "/docs").text
    assert "<script" not in html and "cdn" not in html.lower()
    assert not re.search(r"""(src|href)=["']https?://""", html)
    spec = get(open_server, "/openapi.json").json()
    for path in spec["paths"]:
        assert f"<code>{path}</code>" in html, path
    assert ">start</code>" in html and ">trace_id</code>" in html  # parameters are listed
    assert get(open_server, "/redoc").status_code == 404


# -- login and the session cookie ---------------------------------------------------------------

def login(server: ServerProcess, key: str, next_url: str = "/", **headers: str) -> httpx.Response:
    return httpx.post(server.url + "/login", data={"key": key, "next": next_url},
                      headers={k.replace("_", "-"): v for k, v in headers.items()}, timeout=30)


def session_cookie(answer: httpx.Response) -> tuple[str, str]:
    """(value, attributes) of the Set-Cookie for the session."""
    header = next(h for h in answer.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "="))
    value, _, attributes = header.partition(";")
    return value.split("=", 1)[1], attributes.lower()


@pytest.mark.parametrize("path", ["/", "/traces?q=%7B+status+%3D+error+%7D&range=6h", "/costs", "/docs",
                                  "/sessions/a%2Fb"])
def test_a_page_without_credentials_goes_to_the_login(keyed_server: ServerProcess, path: str) -> None:
    answer = get(keyed_server, path, accept="text/html")
    assert answer.status_code == 303
    location = httpx.URL(answer.headers["location"])
    assert location.path == "/login"
    assert location.params["next"] == path


def test_api_otlp_and_openapi_keep_answering_json_401(keyed_server: ServerProcess) -> None:
    for path in ("/api/v1/status", "/api/v1/traces", "/openapi.json", "/metrics"):
        answer = get(keyed_server, path, accept="text/html")
        assert answer.status_code == 401, path
        assert answer.json()["error"]["code"] == "unauthorized"
    assert post(keyed_server.url, "traces", trace_request([make_span("no key")])).status_code == 401


def test_the_right_key_sets_an_httponly_samesite_cookie_that_is_not_the_key(keyed_server: ServerProcess) -> None:
    answer = login(keyed_server, API_KEY, "/traces?range=6h")
    assert answer.status_code == 303 and answer.headers["location"] == "/traces?range=6h"
    value, attributes = session_cookie(answer)
    assert API_KEY not in value and API_KEY not in answer.headers["set-cookie"]
    assert "httponly" in attributes and "samesite=lax" in attributes and "path=/" in attributes
    assert "max-age=604800" in attributes
    assert "secure" not in attributes  # plain HTTP: a Secure cookie would never come back

    cookies = {SESSION_COOKIE: value}
    assert httpx.get(keyed_server.url + "/api/v1/status", cookies=cookies, timeout=30).status_code == 200
    assert httpx.get(keyed_server.url + "/traces", cookies=cookies, timeout=30).status_code == 200
    # Only GETs: a cross-site form could not spend the cookie on a write.
    assert post(keyed_server.url, "traces", trace_request([make_span("cookie")]),
                headers={"cookie": f"{SESSION_COOKIE}={value}"}).status_code == 401
    # Logged in already: the login page sends the browser on.
    again = httpx.get(keyed_server.url + "/login", params={"next": "/costs"}, cookies=cookies, timeout=30)
    assert again.status_code == 303 and again.headers["location"] == "/costs"


def test_the_cookie_mutes_from_this_sites_pages_only(keyed_server: ServerProcess, open_server: ServerProcess) -> None:
    """The Alerts page mutes a rule with a POST its browser marks as same-origin; the same POST from
    another site's page (or from no page at all) cannot spend the cookie, and is refused without a key."""
    value, _ = session_cookie(login(keyed_server, API_KEY))
    mute = "/api/v1/rules/HighErrorRate/mute"
    own_origin = keyed_server.url
    cases = [({"sec-fetch-site": "same-origin", "origin": own_origin}, 200),
             ({"origin": own_origin}, 200),  # a browser that sends no Sec-Fetch-* (plain HTTP to a remote host)
             ({"sec-fetch-site": "cross-site", "origin": "https://evil.example"}, 401),
             ({"origin": "https://evil.example"}, 401), ({"origin": "null"}, 401), ({}, 401)]
    for headers, status in cases:
        answer = httpx.post(keyed_server.url + mute, headers={**headers, "cookie": f"{SESSION_COOKIE}={value}"},
                            timeout=30)
        assert answer.status_code == status, (headers, answer.text)
    rule = next(r for g in httpx.get(keyed_server.url + "/api/v1/rules", cookies={SESSION_COOKIE: value},
                                     timeout=30).json()["data"]["groups"] for r in g["rules"] if r["name"] == "HighErrorRate")
    assert rule["muted"] is True
    # Without a key: scripts and tools (no browser headers) mute; another site's page through a browser does not.
    for headers, status in [({"sec-fetch-site": "cross-site"}, 403), ({"origin": "https://evil.example"}, 403),
                            ({"sec-fetch-site": "same-origin"}, 200), ({}, 200)]:
        answer = httpx.post(open_server.url + "/api/v1/rules/HighErrorRate/unmute", headers=headers, timeout=30)
        assert answer.status_code == status, (headers, answer.text)
        if status == 403:
            assert "another site" in answer.json()["error"]["message"]


@pytest.mark.parametrize("headers", [{"x_forwarded_proto": "https"}, {"x_forwarded_proto": "https,http"}])
def test_the_cookie_is_secure_behind_an_https_proxy(keyed_server: ServerProcess, headers: dict) -> None:
    _, attributes = session_cookie(login(keyed_server, API_KEY, **headers))
    assert "secure" in attributes.split("; ")


def test_a_wrong_key_is_refused_on_the_page(keyed_server: ServerProcess) -> None:
    answer = login(keyed_server, "wrong-key-0123456789", "/costs")
    assert answer.status_code == 401
    assert "not this server&#39;s API key" in answer.text or "not this server's API key" in answer.text
    assert 'value="/costs"' in answer.text  # the form still goes where the user was going
    assert not answer.headers.get_list("set-cookie")


def test_forged_or_expired_cookies_open_nothing(keyed_server: ServerProcess) -> None:
    expired = issue_session(API_KEY, now=1_000_000)
    forged = issue_session("someone-elses-key-0123456789")
    for value in (expired, forged, API_KEY, "1.2"):
        answer = httpx.get(keyed_server.url + "/api/v1/status", cookies={SESSION_COOKIE: value}, timeout=30)
        assert answer.status_code == 401, value
        assert get(keyed_server, "/", cookie=f"{SESSION_COOKIE}={value}").status_code == 303


@pytest.mark.parametrize("next_url", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"])
def test_login_never_redirects_off_site(keyed_server: ServerProcess, next_url: str) -> None:
    assert login(keyed_server, API_KEY, next_url).headers["location"] == "/"


def test_logout_clears_the_cookie(keyed_server: ServerProcess) -> None:
    answer = httpx.post(keyed_server.url + "/logout", timeout=30)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    value, attributes = session_cookie(answer)
    assert value.strip('"') == "" and "max-age=0" in attributes


def test_without_a_key_login_is_not_needed(open_server: ServerProcess) -> None:
    answer = httpx.get(open_server.url + "/login", params={"next": "/costs"}, timeout=30)
    assert answer.status_code == 303 and answer.headers["location"] == "/costs"
    assert "Log out" not in get(open_server, "/").text


def test_the_form_body_is_bounded(keyed_server: ServerProcess) -> None:
    answer = httpx.post(keyed_server.url + "/login", content=b"key=" + b"x" * 100_000,
                        headers={"content-type": "application/x-www-form-urlencoded"}, timeout=30)
    assert answer.status_code == 401


def test_the_log_names_no_key(keyed_server: ServerProcess) -> None:
    login(keyed_server, API_KEY)
    assert API_KEY not in Path(keyed_server.log_path).read_text(errors="replace")
