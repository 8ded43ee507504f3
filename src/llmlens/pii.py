"""PII and secret redaction shared by the SDK (before export) and the server (at ingest).

    from llmlens.pii import Redactor
    Redactor().redact("mail jane@example.com, card 4111 1111 1111 1111")
    # -> "mail <EMAIL>, card <CREDIT_CARD>"

Kinds (`PiiKind`): EMAIL; PHONE (international `+44 20 7946 0958`, `0049 30 123456`, and North
American `(415) 555-0132` / `415-555-0132`); CREDIT_CARD (13-19 digits, plain or grouped with one
kind of separator, Luhn-checked, issuer digit 2-6); SSN (`123-45-6789`, area/group/serial rules);
IBAN (mod-97 checked); IP_ADDRESS (IPv4 and IPv6, validated by `ipaddress`); API_KEY (OpenAI/
Anthropic `sk-`, AWS `AKIA`/`ASIA`, GitHub `ghp_`/`github_pat_`, Slack `xox?-`, Google `AIza`,
Stripe `sk_live_`, `Bearer <token>`, and `api_key=`/`token:`/`password=`-style assignments, where
only the value is replaced); JWT (three base64url segments starting `eyJ`).

Addresses by role. An IP address is personal data when it is an end user's and infrastructure
when it is a server's or a service's, whatever its range. In free text every IP address is masked
except the host of a URL (`http://10.0.0.5:8700/api/chat` is where a call went: kept). Attribute
values are read with their key (`redact_attribute`): addresses of servers, peers and the host
(`server.address`, `net.peer.*`, `network.peer.*`, `peer.service`, `host.ip`, ...) are kept;
end users' addresses (`client.address`, `http.client_ip`, forwarded-for headers such as
`http.request.header.x-forwarded-for`) are replaced whole; on an inbound (server) span the peer is
the caller, so `net.peer.*`/`network.peer.*` count as the end user's there. Every other kind of PII
is masked in every attribute, infrastructure ones included.

Deliberately not detected: order and invoice numbers, dates, times, versions (`1.2.3`, `v10.0.1`),
prices, short numbers and UUIDs (a UUID identifies a record, not a person, and trace/span ids look
alike). Bare 10-digit runs are not phones and 9-digit runs are not SSNs: too many false positives.
A bare four-part dotted number (`10.0.0.1`) is an IPv4 address even when it is meant as a version.
A digit run glued to letters (`4111111111111111ab...`, a hex trace id) is not a card number.

Modes:
- `mask`: each match becomes a typed placeholder, `<EMAIL>`, `<PHONE>`, `<CREDIT_CARD>`...
- `hash`: `<EMAIL:3f2a9c1b>`, a keyed BLAKE2 hash of the normalised value (case and separators
  removed), so one value correlates across spans without being readable. The key is `hash_salt`;
  without one, a random per-process salt is used, so hashes correlate within a process only:
  give the SDK and the server the same salt to correlate across them. 32 bits: not a secure
  pseudonym for low-entropy values (SSNs, phones) against someone who holds the salt.
- `drop`: `redact_attributes` removes every attribute whose value contains PII (and every end
  user's address); in free text (`redact`, `redact_value`) each match is removed, i.e. replaced
  by the empty string.

Custom patterns: `{"employee_id": r"EMP-\\d{6}"}`; matches are kind "employee_id", placeholder
`<EMPLOYEE_ID>`. They run after the built-in scan, without its cheap pre-check, and on overlap
the earlier (then longer) match wins.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

__all__ = ["END_USER", "INFRASTRUCTURE", "TEXT", "Match", "PiiKind", "Redactor", "address_role"]

Mode = Literal["mask", "hash", "drop"]


class PiiKind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    CREDIT_CARD = "credit_card"
    SSN = "ssn"
    IBAN = "iban"
    IP_ADDRESS = "ip_address"
    API_KEY = "api_key"
    JWT = "jwt"


@dataclass(frozen=True, slots=True)
class Match:
    kind: str  # a PiiKind value or a custom pattern's name
    start: int
    end: int


# -- validators: run only on regex candidates; return the accepted length, 0 to reject -----------


def _digits(s: str) -> str:
    return "".join(ch for ch in s if ch.isdigit())


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(s: str) -> int:
    # A grouped card followed by a CVV ("4111 1111 1111 1111 123") is matched as 19 digits;
    # fall back to the 16-digit prefix before rejecting.
    for candidate in (s, s[:19]) if len(s) == 23 else (s,):
        digits = _digits(candidate)
        # Issuer digit 2-6 (Mastercard 2-series, Amex/Diners/JCB, Visa, Mastercard, Discover/UnionPay)
        # cuts the 1-in-10 Luhn false positives on other long numbers.
        if 13 <= len(digits) <= 19 and digits[0] in "23456" and _luhn(digits):
            return len(candidate)
    return 0


def _ssn(s: str) -> int:
    area, group, serial = s[0:3], s[4:6], s[7:11]
    return (
        len(s) if area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000" else 0
    )


def _iban_ok(iban: str) -> bool:
    if not 15 <= len(iban) <= 34:
        return False
    remainder = 0
    for ch in iban[4:] + iban[:4]:  # letters count as two digits (A=10 ... Z=35)
        remainder = (remainder * (100 if ch.isalpha() else 10) + int(ch, 36)) % 97
    return remainder == 1


def _iban(s: str) -> int:
    # The pattern can swallow a following 4-letter word ("AT61 1904 3002 3457 3201 TEXT"):
    # retry without trailing groups.
    end = len(s)
    while end >= 15:
        if _iban_ok(s[:end].replace(" ", "")):
            return end
        cut = s.rfind(" ", 0, end)
        end = cut if cut > 0 else end - 4
    return 0


def _intl_phone(s: str) -> int:
    digits = _digits(s)
    if s.startswith("00"):
        digits = digits[2:]
    return len(s) if 8 <= len(digits) <= 15 else 0  # E.164: at most 15 digits with the country code


def _nanp_phone(s: str) -> int:
    digits = _digits(s)
    return len(s) if digits[0] not in "01" and digits[3] not in "01" else 0  # area, exchange: 2-9


def _ipv6(s: str) -> int:
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return 0
    return len(s) if sum(1 for part in s.split(":") if part) >= 2 else 0  # not "::" / "::1" noise


def _bearer(s: str) -> int:
    # "Bearer <token>" in prose ("the bearer instrument") has no digits and is short.
    return len(s) if len(s) >= 24 or any(ch.isdigit() for ch in s) else 0


def _secret(s: str) -> int:
    # `token=abc123.` at the end of a sentence: the full stop is not part of the secret.
    value = s.rstrip(".)]}>")
    return len(value) if len(value) >= 6 else 0


def _accept(s: str) -> int:
    return len(s)


# -- the combined pattern -----------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_KEYWORDS = (
    r"api[_-]?key|apikey|access[_-]?token|auth[_-]?token|secret[_-]?key|client[_-]?secret"
    r"|private[_-]?key|password|passwd|pwd|secret|token"
)

# (kind, regex, validator, value group). Order matters only between alternatives that can start
# at the same position: the first that matches is validated, and a rejected candidate is skipped
# whole (a bad IBAN's digits are not a phone number). Every alternative starts behind a lookbehind or \b so that it cannot start inside a
# word or number run: that keeps the scan linear on hostile input. Quantifiers are bounded or
# possessive for the same reason.
_RULES: tuple[tuple[PiiKind, str, Callable[[str], int], str | None], ...] = (
    (PiiKind.JWT, r"\beyJ[\w-]{5,}+\.eyJ[\w-]{5,}+\.[\w-]*+", _accept, None),
    (PiiKind.API_KEY, r"(?<![\w-])sk-(?:proj-|ant-|svcacct-|admin-)?[\w-]{16,}+", _accept, None),
    (PiiKind.API_KEY, r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", _accept, None),
    (PiiKind.API_KEY, r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}+|github_pat_\w{20,}+)", _accept, None),
    (PiiKind.API_KEY, r"\bxox[abposr]-[A-Za-z0-9-]{10,}+", _accept, None),
    (PiiKind.API_KEY, r"\bAIza[\w-]{35}", _accept, None),
    (PiiKind.API_KEY, r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}+", _accept, None),
    (PiiKind.API_KEY, r"\b(?i:bearer)\s{1,8}(?P<bearer>(?!<)[\w.~+/-]{8,}+=*)", _bearer, "bearer"),
    (
        PiiKind.API_KEY,
        # Optional prefix words for env-style names: OPENAI_API_KEY=..., X-Auth-Token: ...
        rf"(?:[A-Za-z0-9]{{1,32}}[_-]){{0,4}}(?i:{_KEYWORDS})\b[\"']?\s{{0,8}}[:=]\s{{0,8}}[\"']?(?P<secret>(?!<)[^\s\"',;&]{{6,200}})",
        _secret,
        "secret",
    ),
    (
        PiiKind.EMAIL,
        r"(?<![\w.%+-])[\w.%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![\w-])",
        _accept,
        None,
    ),
    (PiiKind.IBAN, r"\b[A-Z]{2}\d\d(?: ?[A-Z0-9]{4}){2,7}+(?: ?[A-Z0-9]{1,3})?\b", _iban, None),
    (
        PiiKind.PHONE,
        r"(?<![\w+])(?:\+|00)[1-9]\d{0,3}(?>(?:[ .-]?(?:\(\d{1,4}\)|\d{1,6}))){1,6}+(?![\w])",
        _intl_phone,
        None,
    ),
    (PiiKind.SSN, r"(?<![\w-])\d{3}-\d\d-\d{4}(?![\d-])", _ssn, None),
    (
        PiiKind.CREDIT_CARD,
        r"(?<![\w.-])(?:\d{13,19}|\d{4}(?P<sep>[ -])\d{4}(?P=sep)\d{4}(?P=sep)\d{4}(?:(?P=sep)\d{3})?"
        r"|\d{4}(?P<sep2>[ -])\d{6}(?P=sep2)\d{4,5})(?!\w)",
        _card,
        None,
    ),
    (PiiKind.PHONE, r"(?<![\w+.-])(?:\(\d{3}\) ?|\d{3}[-. ])\d{3}[-. ]\d{4}(?![\w-])", _nanp_phone, None),
    (PiiKind.IP_ADDRESS, rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\w)", _accept, None),
    (
        PiiKind.IP_ADDRESS,
        r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?(?![\w:.])",
        _ipv6,
        None,
    ),
)

_GROUPS = {f"r{i}": rule for i, rule in enumerate(_RULES)}
# Every rule starts at a non-word boundary, so one shared guard up front rejects the ~80% of
# positions that sit inside a word before any alternative is tried (about 4x faster on prose).
_COMBINED = re.compile(
    r"(?<!\w)(?=[\w+(:.%-])(?:" + "|".join(f"(?P<r{i}>{rx})" for i, (_, rx, _, _) in enumerate(_RULES)) + ")",
    re.ASCII,
)

_MIN_LEN = 6  # "a@b.co"; nothing shorter is PII we detect
_TRIGGER_CHARS = "0123456789@"
# Secrets that can be digit-free: passwords in assignments, long bearer tokens.
_TRIGGER_WORDS = ("key", "token", "secret", "passw", "pwd", "bearer")
_CUSTOM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_PROCESS_SALT = os.urandom(16)
_MAX_DEPTH = 32

# -- whose address an attribute holds (see "Addresses by role" above) ----------------------------

INFRASTRUCTURE = "infrastructure"  # IP addresses kept; every other kind still masked
END_USER = "end_user"  # the whole value is an end user's address: replaced whatever it holds
TEXT = "text"  # free text: every IP address masked except a URL's host

_END_USER_KEYS = frozenset({"client.address", "client.socket.address", "http.client_ip"})
# The direct peer: where an outgoing call went, or (inbound) who called.
_PEER_ADDRESS_KEYS = frozenset({
    "net.peer.ip", "net.peer.name", "net.sock.peer.addr", "net.sock.peer.name", "network.peer.address",
})
_INFRASTRUCTURE_PREFIXES = (
    "server.", "peer.", "host.", "destination.", "net.peer.", "network.peer.", "net.sock.peer.", "net.host.",
    "net.sock.host.", "network.local.", "http.host", "http.server_name", "url.domain",
)
_HEADER_PREFIX = "http.request.header."
_FORWARDED_HEADERS = frozenset({
    "x-forwarded-for", "forwarded", "x-forwarded", "x-original-forwarded-for", "x-real-ip", "x-client-ip",
    "x-cluster-client-ip", "true-client-ip", "cf-connecting-ip", "fastly-client-ip",
})


def address_role(key: str, inbound: bool = False) -> str:
    """Whose address an attribute holds: INFRASTRUCTURE, END_USER or TEXT (anything else).

    `inbound`: the attribute belongs to a server span, whose peer is the caller.
    """
    if key in _END_USER_KEYS:
        return END_USER
    if key in _PEER_ADDRESS_KEYS:
        return END_USER if inbound else INFRASTRUCTURE
    if key.startswith(_INFRASTRUCTURE_PREFIXES):
        return INFRASTRUCTURE
    if key.startswith(_HEADER_PREFIX):
        header = key[len(_HEADER_PREFIX):].lower().replace("_", "-")
        return END_USER if header in _FORWARDED_HEADERS else TEXT
    return TEXT


def _is_url_host(text: str, start: int) -> bool:
    """Whether the address at `start` is the host of a URL (`scheme://host`, `scheme://[v6]`,
    `scheme://user@host`): a server's address, kept in free text."""
    if text.endswith("[", 0, start):
        start -= 1
    if text.endswith("://", 0, start):
        return True
    if not text.endswith("@", 0, start):
        return False
    scheme_end = text.rfind("://", max(0, start - 260), start)
    userinfo = text[scheme_end + 3 : start - 1]
    return scheme_end >= 0 and not any(ch in userinfo for ch in "/?# \t\n")


def _maybe_pii(text: str) -> bool:
    """Cheap pre-check: substring tests run in C and skip most PII-free strings."""
    if any(ch in text for ch in _TRIGGER_CHARS):
        return True
    lowered = text.lower()
    return any(word in lowered for word in _TRIGGER_WORDS)


def _normalise(kind: str, value: str) -> str:
    if kind in (PiiKind.PHONE, PiiKind.CREDIT_CARD, PiiKind.SSN, PiiKind.IBAN):
        return "".join(ch for ch in value if ch.isalnum()).upper()
    if kind in (PiiKind.EMAIL, PiiKind.IP_ADDRESS):
        return value.lower()
    return value


class Redactor:
    """Finds and replaces PII in strings, nested values and span attributes. Thread-safe."""

    def __init__(
        self,
        mode: Mode = "mask",
        kinds: Iterable[PiiKind | str] | None = None,
        custom_patterns: Mapping[str, str] | None = None,
        hash_salt: str | bytes | None = None,
    ) -> None:
        if mode not in ("mask", "hash", "drop"):
            raise ValueError(f"mode must be 'mask', 'hash' or 'drop', got {mode!r}")
        self.mode: Mode = mode
        if kinds is None:
            self.kinds = frozenset(PiiKind)
        else:
            try:
                self.kinds = frozenset(PiiKind(str(k).lower()) for k in kinds)
            except ValueError as exc:
                valid = ", ".join(k.value for k in PiiKind)
                raise ValueError(f"unknown PII kind in {list(kinds)!r}; valid: {valid}") from exc
        self._custom: list[tuple[str, re.Pattern[str]]] = []
        for name, pattern in (custom_patterns or {}).items():
            if not isinstance(name, str) or not _CUSTOM_NAME.match(name):
                raise ValueError(f"custom pattern name {name!r} must be a letter then letters/digits/_")
            try:
                self._custom.append((name, re.compile(pattern)))
            except (re.error, TypeError) as exc:
                raise ValueError(f"custom pattern {name!r} is not a valid regex: {exc}") from exc
        salt = hash_salt.encode() if isinstance(hash_salt, str) else hash_salt
        # BLAKE2s keys are at most 32 bytes; hashing the salt accepts any length.
        self._key = hashlib.sha256(salt).digest() if salt is not None else _PROCESS_SALT

    # -- detection -------------------------------------------------------------------------------

    def find(self, text: str, *, keep_ip_addresses: bool = False) -> list[Match]:
        """Non-overlapping matches in `text`, in order. IP addresses that are a URL's host are
        not matches; with `keep_ip_addresses` (an infrastructure attribute) no IP address is."""
        if not isinstance(text, str) or len(text) < _MIN_LEN and not self._custom:
            return []
        found = self._builtin(text, keep_ip_addresses) if len(text) >= _MIN_LEN and _maybe_pii(text) else []
        if not self._custom:
            return found
        extra = [
            Match(name, m.start(), m.end())
            for name, rx in self._custom
            for m in rx.finditer(text)
            if m.end() > m.start()
        ]
        if not extra:
            return found
        merged: list[Match] = []
        for match in sorted(found + extra, key=lambda m: (m.start, -m.end)):
            if not merged or match.start >= merged[-1].end:
                merged.append(match)
        return merged

    def _builtin(self, text: str, keep_ip_addresses: bool = False) -> list[Match]:
        matches: list[Match] = []
        search = _COMBINED.search
        kinds = self.kinds
        pos = 0
        while (m := search(text, pos)) is not None:
            kind, _, validate, value_group = _GROUPS[m.lastgroup]  # type: ignore[index]
            start, end = m.span(value_group) if value_group else m.span()
            if kind not in kinds:
                pos = m.start() + 1  # a disabled kind must not hide another kind starting here
            elif accepted := validate(text[start:end]):
                if kind is not PiiKind.IP_ADDRESS or not (keep_ip_addresses or _is_url_host(text, start)):
                    matches.append(Match(kind, start, start + accepted))
                pos = start + accepted if value_group is None else m.end()
            else:
                pos = m.end()
        return matches

    # -- redaction -------------------------------------------------------------------------------

    def redact(self, text: str, *, keep_ip_addresses: bool = False) -> str:
        """`text` with every match replaced according to the mode."""
        matches = self.find(text, keep_ip_addresses=keep_ip_addresses)
        if not matches:
            return text
        parts: list[str] = []
        last = 0
        for match in matches:
            parts.append(text[last : match.start])
            parts.append(self._replacement(match.kind, text[match.start : match.end]))
            last = match.end
        parts.append(text[last:])
        return "".join(parts)

    def redact_value(self, value: Any, _depth: int = 0, *, keep_ip_addresses: bool = False) -> Any:
        """Redact strings inside str / list / tuple / dict values (recursively); others unchanged."""
        if isinstance(value, str):
            return self.redact(value, keep_ip_addresses=keep_ip_addresses)
        if _depth >= _MAX_DEPTH and isinstance(value, list | tuple | dict):
            return "<REDACTED>"  # too deep (or cyclic) to inspect: fail closed
        if isinstance(value, list | tuple):
            items = [self.redact_value(v, _depth + 1, keep_ip_addresses=keep_ip_addresses) for v in value]
            return items if isinstance(value, list) else tuple(items)
        if isinstance(value, dict):
            return {k: self.redact_value(v, _depth + 1, keep_ip_addresses=keep_ip_addresses)
                    for k, v in value.items()}
        return value

    def redact_attribute(self, key: str, value: str, *, inbound: bool = False) -> str | None:
        """One attribute's string value, read with its key (see "Addresses by role"); None in drop
        mode when the attribute must be left out."""
        role = address_role(key, inbound)
        if role == END_USER:
            if not value:
                return value
            return None if self.mode == "drop" else self._replacement(PiiKind.IP_ADDRESS, value)
        keep = role == INFRASTRUCTURE
        if self.mode == "drop":
            return None if self.find(value, keep_ip_addresses=keep) else value
        return self.redact(value, keep_ip_addresses=keep)

    def redact_attributes(self, attrs: Mapping[str, Any], *, inbound: bool = False) -> dict[str, Any]:
        """Redact attribute values, each read with its key; in drop mode, leave out every attribute
        whose value had PII."""
        out: dict[str, Any] = {}
        drop = self.mode == "drop"
        for key, value in attrs.items():
            role = address_role(key, inbound)
            if role == END_USER:
                if drop:
                    if not value:
                        out[key] = value
                    continue
                out[key] = self._whole_address(value)
                continue
            keep = role == INFRASTRUCTURE
            if not drop:
                out[key] = self.redact_value(value, keep_ip_addresses=keep)
            elif not self._contains(value, 0, keep):
                out[key] = value
        return out

    def _whole_address(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._replacement(PiiKind.IP_ADDRESS, value) if value else value
        if isinstance(value, list | tuple):  # header values arrive as a list of strings
            items = [self._replacement(PiiKind.IP_ADDRESS, str(v)) for v in value]
            return items if isinstance(value, list) else tuple(items)
        return value

    def _contains(self, value: Any, depth: int, keep_ip_addresses: bool = False) -> bool:
        if isinstance(value, str):
            return bool(self.find(value, keep_ip_addresses=keep_ip_addresses))
        if depth >= _MAX_DEPTH and isinstance(value, list | tuple | dict):
            return True
        if isinstance(value, list | tuple):
            return any(self._contains(v, depth + 1, keep_ip_addresses) for v in value)
        if isinstance(value, dict):
            return any(self._contains(v, depth + 1, keep_ip_addresses) for v in value.values())
        return False

    def _replacement(self, kind: str, value: str) -> str:
        if self.mode == "drop":
            return ""
        label = kind.upper()
        if self.mode == "mask":
            return f"<{label}>"
        digest = hashlib.blake2s(_normalise(kind, value).encode(), key=self._key, digest_size=4)
        return f"<{label}:{digest.hexdigest()}>"
