"""The rules behind the login and the Host check: session tokens, next URLs, host names."""

from __future__ import annotations

import pytest

from llmlens.server.api.auth import (
    SESSION_SECONDS,
    issue_session,
    key_matches,
    request_is_https,
    safe_next,
    session_is_valid,
)
from llmlens.server.api.security import HostPolicy, host_name, is_loopback_name, parse_allowed_hosts

KEY = "a-long-enough-test-api-key"


def test_a_session_token_holds_no_key_and_is_valid_until_it_expires() -> None:
    token = issue_session(KEY, now=1_000_000)
    assert KEY not in token
    assert session_is_valid(KEY.encode(), token, now=1_000_000 + SESSION_SECONDS - 1)
    assert not session_is_valid(KEY.encode(), token, now=1_000_000 + SESSION_SECONDS)
    assert not session_is_valid(b"another-key-of-sixteen-chars", token, now=1_000_000)


@pytest.mark.parametrize("tamper", [
    lambda t: t.replace(t.split(".")[0], str(int(t.split(".")[0]) + 86400)),  # a later expiry, same signature
    lambda t: t[:-1] + ("0" if t[-1] != "0" else "1"),  # one hex digit of the signature
    lambda t: t.split(".")[1],  # no expiry
    lambda t: "",
    lambda t: "99999999999999999999." + t.split(".")[1],
    lambda t: KEY,  # the raw key is not a session
])
def test_a_tampered_session_token_is_refused(tamper) -> None:
    token = issue_session(KEY, now=1_000_000)
    assert not session_is_valid(KEY.encode(), tamper(token), now=1_000_000)


def test_key_comparison() -> None:
    assert key_matches(KEY, KEY)
    assert not key_matches(KEY, KEY[:-1])
    assert not key_matches(KEY, "")


@pytest.mark.parametrize(("raw", "expected"), [
    ("/traces?range=6h", "/traces?range=6h"),
    ("/sessions/a%2Fb", "/sessions/a%2Fb"),
    (None, "/"),
    ("", "/"),
    ("traces", "/"),
    ("//evil.example/x", "/"),
    ("/\\evil.example", "/"),
    ("https://evil.example/", "/"),
    ("javascript:alert(1)", "/"),
    ("/ok\r\nSet-Cookie: x=1", "/"),
])
def test_next_urls_stay_on_this_site(raw: str | None, expected: str) -> None:
    assert safe_next(raw) == expected


@pytest.mark.parametrize(("scope", "https"), [
    ({"scheme": "https", "headers": []}, True),
    ({"scheme": "http", "headers": [(b"x-forwarded-proto", b"https")]}, True),
    ({"scheme": "http", "headers": [(b"x-forwarded-proto", b"HTTPS, http")]}, True),
    ({"scheme": "http", "headers": [(b"x-forwarded-proto", b"http")]}, False),
    ({"scheme": "http", "headers": []}, False),
])
def test_https_is_the_scheme_or_the_proxy_header(scope: dict, https: bool) -> None:
    assert request_is_https(scope) is https


@pytest.mark.parametrize(("header", "name"), [
    ("localhost:4318", "localhost"), ("LocalHost", "localhost"), ("127.0.0.1:4318", "127.0.0.1"),
    ("[::1]:4318", "::1"), ("[::1]", "::1"), ("example.com.", "example.com"), ("::1", "::1"),
])
def test_host_names_lose_port_brackets_and_case(header: str, name: str) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize(("name", "loopback"), [
    ("localhost", True), ("ui.localhost", True), ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True),
    ("localhost.evil.example", False), ("evil.example", False), ("10.0.0.1", False), ("0.0.0.0", False),
    ("", False),
])
def test_loopback_names(name: str, loopback: bool) -> None:
    assert is_loopback_name(name) is loopback


def test_without_a_key_only_loopback_and_allowed_names_are_answered() -> None:
    policy = HostPolicy.of(None, "llm.example.com, *.corp.example , https://proxy.example:8443/")
    assert [policy.allows(n) for n in ("localhost", "127.0.0.1", "::1", "llm.example.com", "a.corp.example",
                                       "proxy.example")] == [True] * 6
    assert [policy.allows(n) for n in ("evil.example", "corp.example", "llm.example.com.evil.example",
                                       "xcorp.example")] == [False] * 4
    assert not HostPolicy.of(None, None).allows("evil.example")
    assert HostPolicy.of(None, "*").any_host


def test_with_a_key_any_host_is_answered_unless_hosts_are_listed() -> None:
    assert HostPolicy.of(KEY, None).any_host
    listed = HostPolicy.of(KEY, "llm.example.com")
    assert not listed.any_host
    assert listed.allows("llm.example.com") and listed.allows("localhost")
    assert not listed.allows("evil.example")


def test_allowed_hosts_parse() -> None:
    assert parse_allowed_hosts(" A.example.com:443 ,, *.b.example,a.example.com") == ("a.example.com", "*.b.example")
    assert parse_allowed_hosts("") == parse_allowed_hosts(None) == ()
