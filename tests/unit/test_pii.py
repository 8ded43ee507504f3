"""Tests for llmlens.pii: each detector both ways, modes, custom patterns, nesting, hostile input."""

from __future__ import annotations

import re

import pytest

from llmlens.pii import END_USER, INFRASTRUCTURE, TEXT, Match, PiiKind, Redactor, address_role

R = Redactor()


def kinds(text: str, redactor: Redactor = R) -> list[str]:
    return [m.kind for m in redactor.find(text)]


POSITIVE = {
    PiiKind.EMAIL: ["jane.doe@example.com", "j.o+tag@mail.example.co.uk", "ADMIN_1@Example.ORG"],
    PiiKind.PHONE: [
        "+44 20 7946 0958",
        "+1 (415) 555-0132",
        "0049 30 123456",
        "(415) 555-0132",
        "415-555-0132",
        "415.555.0132",
        "+33 1 23 45 67 89",
        "+442079460958",
    ],
    PiiKind.CREDIT_CARD: [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "5555555555554444",
        "378282246310005",
        "3782 822463 10005",
    ],
    PiiKind.SSN: ["123-45-6789", "078-05-1121"],
    PiiKind.IBAN: [
        "DE89 3704 0044 0532 0130 00",
        "GB82WEST12345698765432",
        "FR14 2004 1010 0505 0001 3M02 606",
    ],
    PiiKind.IP_ADDRESS: [
        "192.168.1.20",
        "8.8.8.8",
        "2001:db8::8a2e:370:7334",
        "fe80::1ff:fe23:4567:890a",
        "::ffff:192.0.2.1",
    ],
    PiiKind.API_KEY: [
        "sk-proj-abcdefghijklmnopqrstuvwx12",
        "sk-ant-api03-abcdefghijklmnop_qrstu",
        "sk-abcdefghijklmnopqrstuvwxyz123456",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "xoxb-1234567890-abcdefghij",
        "sk_live_abcdefghijklmnop1234",
    ],
    PiiKind.JWT: [
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    ],
}


@pytest.mark.parametrize(("kind", "value"), [(k, v) for k, vs in POSITIVE.items() for v in vs])
def test_detects_each_kind_in_context(kind: PiiKind, value: str) -> None:
    text = f"before {value} after."
    found = R.find(text)
    assert [m.kind for m in found] == [kind], (value, found)
    assert text[found[0].start : found[0].end] == value
    assert R.redact(text) == f"before <{kind.upper()}> after."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc123def456ghi789jkl", "Authorization: Bearer <API_KEY>"),
        ("api_key=s3cr3tvalue&x=1", "api_key=<API_KEY>&x=1"),
        ('{"password": "hunter22"}', '{"password": "<API_KEY>"}'),
        ("X-API-Key: 0123456789abcdef", "X-API-Key: <API_KEY>"),
        ("OPENAI_API_KEY='abcdef123456'", "OPENAI_API_KEY='<API_KEY>'"),
    ],
)
def test_secret_assignments_keep_the_name(text: str, expected: str) -> None:
    assert R.redact(text) == expected


@pytest.mark.parametrize(
    "near_miss",
    [
        "4111 1111 1111 1112",  # Luhn fails
        "4111111111111112",
        "1234567812345670",  # Luhn ok, issuer digit 1
        "41111111111111111111111",  # too long to be a card
        "000-12-3456",  # SSN area 000
        "666-12-3456",  # area 666
        "912-12-3456",  # area 9xx
        "123-00-4567",  # group 00
        "123-45-0000",  # serial 0000
        "DE89 3704 0044 0532 0130 01",  # bad IBAN checksum
        "GB82WEST12345698765433",
        "123-456-7890",  # NANP area code cannot start with 1
        "+1 234",  # too few digits for a phone
        "256.1.1.1",  # not an IPv4 octet
        "12:30:45",  # a time, not IPv6
        "00:1A:2B:3C:4D:5E",  # MAC address, not IPv6
        "Bearer authentication",  # prose
        "sk-learn",
        "jane@localhost",
    ],
)
def test_validators_reject_near_misses(near_miss: str) -> None:
    assert R.find(f"value {near_miss} here") == [], near_miss


@pytest.mark.parametrize(
    "safe",
    [
        "Order #12345678 shipped",
        "invoice 2026-000123",
        "on 2026-11-23 and 23/11/2026 and 11/23/26",
        "ts 2026-11-23T10:15:30.123Z",
        "at 12:30, 09:15:00 or 23:59:59.999",
        "version 1.2.3, v10.0.1, python 3.11.4",
        "price $1,234.56 or €99.99 or 1 234 567,89",
        "42 apples, 7 pears, 1000 tokens, max_tokens=1000",
        "uuid 550e8400-e29b-41d4-a716-446655440000 and 550E8400-E29B-41D4-A716-446655440000",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
        "trace 4111111111111111abcdef0123456789 (opens with a Luhn-valid run)",
        "the bearer of bad news",
        "call me maybe",
        "std::vector<int> and a::b",
        "ratio 3:2 and 16:9",
    ],
)
def test_does_not_mask_ordinary_text(safe: str) -> None:
    assert R.redact(safe) == safe, R.find(safe)


def test_mixed_text() -> None:
    text = (
        "Jane (jane@example.com, +44 20 7946 0958) paid with 4111-1111-1111-1111 for order #12345678 "
        "on 2026-11-23 from 10.0.0.1; token=abcdef123456."
    )
    assert R.redact(text) == (
        "Jane (<EMAIL>, <PHONE>) paid with <CREDIT_CARD> for order #12345678 "
        "on 2026-11-23 from <IP_ADDRESS>; token=<API_KEY>."
    )
    assert [m.kind for m in R.find(text)] == ["email", "phone", "credit_card", "ip_address", "api_key"]


def test_card_followed_by_cvv_is_still_found() -> None:
    assert R.redact("card 4111 1111 1111 1111 123") == "card <CREDIT_CARD> 123"


def test_iban_followed_by_a_word() -> None:
    assert R.redact("AT61 1904 3002 3457 3201 TEXT") == "<IBAN> TEXT"


def test_match_objects() -> None:
    assert R.find("mail a@b.co") == [Match("email", 5, 11)]
    assert PiiKind.EMAIL == "email"


# -- modes ------------------------------------------------------------------------------------


def test_hash_mode_is_stable_normalised_and_salted() -> None:
    h = Redactor(mode="hash", hash_salt="s1")
    out = h.redact("a jane@x.com b JANE@X.COM c +44 20 7946 0958 d +442079460958")
    tags = re.findall(r"<(\w+):([0-9a-f]{8})>", out)
    assert [t[0] for t in tags] == ["EMAIL", "EMAIL", "PHONE", "PHONE"]
    assert tags[0][1] == tags[1][1] and tags[2][1] == tags[3][1] and tags[0][1] != tags[2][1]
    assert "jane" not in out.lower()
    assert Redactor(mode="hash", hash_salt="s1").redact("jane@x.com") == h.redact("jane@x.com")
    assert Redactor(mode="hash", hash_salt="s2").redact("jane@x.com") != h.redact("jane@x.com")
    # Without a salt: stable within the process.
    assert Redactor(mode="hash").redact("jane@x.com") == Redactor(mode="hash").redact("jane@x.com")


def test_drop_mode_free_text_removes_matches() -> None:
    assert Redactor(mode="drop").redact("mail jane@x.com now") == "mail  now"


def test_drop_mode_attributes() -> None:
    d = Redactor(mode="drop")
    attrs = {
        "gen_ai.prompt": "my email is jane@x.com",
        "gen_ai.request.model": "gpt-4o-mini",
        "tags": ["ok", "ip 10.0.0.1"],
        "count": 12345678,
        "nested": {"a": {"b": "fine"}},
    }
    assert d.redact_attributes(attrs) == {
        "gen_ai.request.model": "gpt-4o-mini",
        "count": 12345678,
        "nested": {"a": {"b": "fine"}},
    }


def test_mask_mode_attributes_and_nested_values() -> None:
    attrs = {
        "prompt": "call +1 (415) 555-0132",
        "list": ["a@b.co", "plain"],
        "tuple": ("a@b.co",),
        "deep": {"x": [{"y": "ssn 123-45-6789"}]},
        "n": 4111111111111111,  # not a string: left as is
        "b": b"a@b.co",
        "none": None,
    }
    out = R.redact_attributes(attrs)
    assert out == {
        "prompt": "call <PHONE>",
        "list": ["<EMAIL>", "plain"],
        "tuple": ("<EMAIL>",),
        "deep": {"x": [{"y": "ssn <SSN>"}]},
        "n": 4111111111111111,
        "b": b"a@b.co",
        "none": None,
    }
    assert attrs["list"] == ["a@b.co", "plain"]  # input not mutated


def test_cyclic_value_fails_closed() -> None:
    loop: list = ["a@b.co"]
    loop.append(loop)
    out = R.redact_value(loop)
    assert out[0] == "<EMAIL>"
    assert "a@b.co" not in repr(out)
    assert Redactor(mode="drop").redact_attributes({"x": loop}) == {}


def test_kinds_filter() -> None:
    r = Redactor(kinds=["email"])
    assert r.redact("a@b.co 10.0.0.1") == "<EMAIL> 10.0.0.1"
    assert Redactor(kinds=[PiiKind.IP_ADDRESS]).redact("a@b.co 10.0.0.1") == "a@b.co <IP_ADDRESS>"
    with pytest.raises(ValueError, match="unknown PII kind"):
        Redactor(kinds=["passport"])


def test_bad_mode() -> None:
    with pytest.raises(ValueError, match="mode"):
        Redactor(mode="blur")  # type: ignore[arg-type]


# -- custom patterns --------------------------------------------------------------------------


def test_custom_patterns() -> None:
    r = Redactor(custom_patterns={"employee_id": r"EMP-\d{6}", "codename": r"(?i)project\s+falcon"})
    assert r.redact("EMP-123456 works on Project Falcon, mail a@b.co") == (
        "<EMPLOYEE_ID> works on <CODENAME>, mail <EMAIL>"
    )
    assert [m.kind for m in r.find("EMP-000001")] == ["employee_id"]  # short text still scanned
    h = Redactor(mode="hash", custom_patterns={"employee_id": r"EMP-\d{6}"}, hash_salt="x")
    assert re.fullmatch(r"<EMPLOYEE_ID:[0-9a-f]{8}>", h.redact("EMP-123456"))


def test_custom_overlapping_builtin_earliest_longest_wins() -> None:
    r = Redactor(custom_patterns={"domain": r"example\.com", "zero": r"x*"})
    assert r.redact("jane@example.com") == "<EMAIL>"


def test_invalid_custom_pattern_names_it() -> None:
    with pytest.raises(ValueError, match="'broken'"):
        Redactor(custom_patterns={"broken": r"(unclosed"})
    with pytest.raises(ValueError, match="name"):
        Redactor(custom_patterns={"bad name!": r"x"})


# -- hostile input ----------------------------------------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "text",
    [
        "a" * 1_000_000,
        "1 " + "a" * 1_000_000,
        "@" * 100_000,
        "1" * 1_000_000,
        "1." * 500_000,
        "1:" * 500_000,
        "1-" * 500_000,
        "a@" * 300_000,
        "+1 " * 300_000,
        "1 " + "eyJ" * 300_000,
        "1 " + "ghp_" * 200_000,
        "1 " + "AKIA" * 250_000,
        "1 " + ":" * 1_000_000,
        "Bearer " * 100_000,
        "api_key=" * 100_000,
        "DE89 " * 200_000,
        "(415) " * 100_000,
        "a" * 64 + "@" + "a." * 100_000,
        "x" * 100_000 + "@" + "y" * 100_000,
        ("jane@example.com 4111 1111 1111 1111 " * 20_000),
    ],
    ids=lambda t: f"{t[:8]!r}x{len(t)}",
)
def test_hostile_input_finishes(text: str) -> None:
    out = R.redact(text)
    assert isinstance(out, str)


@pytest.mark.timeout(10)
def test_megabyte_with_pii_is_fully_masked() -> None:
    text = "contact jane@example.com " * 40_000
    out = R.redact(text)
    assert "jane@" not in out and out.count("<EMAIL>") == 40_000


@pytest.mark.parametrize("value", ["", "a", "a@b", "12345", None, 42, 3.5, True])
def test_tiny_and_non_string_values(value: object) -> None:
    assert R.redact_value(value) == value
    if isinstance(value, str):
        assert R.redact(value) == value
        assert R.find(value) == []


# -- addresses by role ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('HTTP Request: POST http://127.0.0.1:8700/api/chat "HTTP/1.1 200 OK"',
         'HTTP Request: POST http://127.0.0.1:8700/api/chat "HTTP/1.1 200 OK"'),
        ("GET http://[2001:db8::1]:8080/x", "GET http://[2001:db8::1]:8080/x"),
        ("postgres://app@10.0.0.5:5432/db", "postgres://app@10.0.0.5:5432/db"),
        # The URL's host is kept, not what its path or query says about a person.
        ("http://192.0.2.10/chat?email=jane@example.com&from=203.0.113.77",
         "http://192.0.2.10/chat?email=<EMAIL>&from=<IP_ADDRESS>"),
        ('127.0.0.1:54321 - "POST /v1/chat HTTP/1.1" 200', '<IP_ADDRESS>:54321 - "POST /v1/chat HTTP/1.1" 200'),
        ("user 10.1.2.3 at http://10.1.2.4/", "user <IP_ADDRESS> at http://10.1.2.4/"),
        ("see https://x.example/a b@10.0.0.5", "see https://x.example/a b@<IP_ADDRESS>"),
    ],
)
def test_free_text_keeps_a_urls_host_and_masks_other_addresses(text: str, expected: str) -> None:
    assert R.redact(text) == expected


@pytest.mark.parametrize(
    ("key", "inbound", "role"),
    [
        ("server.address", False, INFRASTRUCTURE),
        ("server.address", True, INFRASTRUCTURE),  # on a server span: the server itself
        ("net.peer.ip", False, INFRASTRUCTURE),
        ("network.peer.address", False, INFRASTRUCTURE),
        ("network.peer.address", True, END_USER),  # inbound: the peer is the caller
        ("net.sock.peer.addr", True, END_USER),
        ("peer.service", True, INFRASTRUCTURE),
        ("host.ip", False, INFRASTRUCTURE),
        ("client.address", False, END_USER),
        ("client.socket.address", False, END_USER),
        ("http.client_ip", False, END_USER),
        ("http.request.header.x-forwarded-for", False, END_USER),
        ("http.request.header.X_Real_IP", False, END_USER),
        ("http.request.header.forwarded", False, END_USER),
        ("http.request.header.user-agent", False, TEXT),
        ("url.full", False, TEXT),  # a URL: its host is kept by the free-text rule
        ("gen_ai.prompt", False, TEXT),
    ],
)
def test_address_roles(key: str, inbound: bool, role: str) -> None:
    assert address_role(key, inbound) == role


def test_attributes_read_with_their_keys() -> None:
    attrs = {
        "server.address": "10.0.0.5",
        "host.ip": ["10.0.0.5", "fe80::1ff:fe23:4567:890a"],
        "db.statement": "select * from users where email = 'jane@example.com'",
        "http.url": "http://127.0.0.1:8700/api/chat",
        "client.address": "127.0.0.1",  # loopback, still the end user's
        "http.request.header.x-forwarded-for": ("203.0.113.77, 10.0.0.1",),
        "net.peer.name": "api.example.com",
        "note": "from 10.0.0.9",
    }
    assert R.redact_attributes(attrs) == {
        "server.address": "10.0.0.5",
        "host.ip": ["10.0.0.5", "fe80::1ff:fe23:4567:890a"],
        "db.statement": "select * from users where email = '<EMAIL>'",
        "http.url": "http://127.0.0.1:8700/api/chat",
        "client.address": "<IP_ADDRESS>",
        "http.request.header.x-forwarded-for": ("<IP_ADDRESS>",),
        "net.peer.name": "api.example.com",
        "note": "from <IP_ADDRESS>",
    }
    inbound_peer = R.redact_attributes({"net.peer.name": "laptop-of-jane"}, inbound=True)
    assert inbound_peer == {"net.peer.name": "<IP_ADDRESS>"}
    # Other kinds of PII are masked in infrastructure attributes too.
    assert R.redact_attribute("server.address", "jane@example.com") == "<EMAIL>"
    assert R.redact_attribute("server.address", "10.0.0.5") == "10.0.0.5"
    assert R.redact_attribute("client.address", "") == ""


def test_end_users_addresses_in_hash_and_drop_modes() -> None:
    h = Redactor(mode="hash", hash_salt="s")
    one = h.redact_attribute("client.address", "203.0.113.77")
    again = h.redact_attribute("client.address", "203.0.113.77")
    assert re.fullmatch(r"<IP_ADDRESS:[0-9a-f]{8}>", one) and one == again  # correlates without being readable
    assert one == h.redact("from 203.0.113.77").removeprefix("from ")  # same value, same hash, in text too
    d = Redactor(mode="drop")
    assert d.redact_attribute("client.address", "203.0.113.77") is None
    assert d.redact_attribute("server.address", "10.0.0.5") == "10.0.0.5"
    kept = d.redact_attributes({"client.address": "127.0.0.1", "server.address": "10.0.0.5", "note": "a@b.co"})
    assert kept == {"server.address": "10.0.0.5"}
