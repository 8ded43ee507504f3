"""Opaque cursors for keyset paging: the sort key of a page's last row, to continue after it.

A cursor is the key's parts as URL-safe base64 JSON; the server only takes back what it could have
issued (the expected number of parts, each of its kind), anything else is a 400 on `cursor`.
"""

from __future__ import annotations

import base64
import json
import re

from llmlens.server.errors import BadParameter

_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,9})?$")
KINDS = {"time": _TIME.match, "uint": str.isdigit, "text": lambda v: len(v) <= 4096}


def encode(*parts: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


def decode(cursor: str, *kinds: str) -> list[str]:
    """The parts of a cursor this server issued for a key of these kinds (time, uint, text)."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadParameter("cursor", "cursor is not one this server issued") from exc
    if not (isinstance(parts, list) and len(parts) == len(kinds)
            and all(isinstance(p, str) and KINDS[k](p) for p, k in zip(parts, kinds, strict=True))):
        raise BadParameter("cursor", "cursor is not one this server issued (for this list)")
    return parts
