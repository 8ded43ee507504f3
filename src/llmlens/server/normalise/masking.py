"""`--mask-pii` at ingest: every string a batch will store passes one rule before it is stored.

One place: each normaliser hands its finished batch to `mask_batch` when masking is on. It walks
every table by column type (text, Map(String, String), and arrays of either, as declared in
store/columns.py), so no column is forgotten, today's or one added later: span names, status
messages, event and link attributes, resource and scope attributes, log bodies and severity
texts, metric data-point and exemplar attributes, score comments, and llm_calls' user, session
and department (taken from the attributes before masking, masked here by the same rule, so a
call's row agrees with its span). Only the columns the normaliser fills itself are left alone:
ids in hex (a trace id can look like a card number) and enum names.

The rule is `llmlens.pii`'s, the SDK's too: free text is scanned for every kind of PII; an
attribute is read with its key, so servers' and services' addresses stay (operators need them)
and end users' are replaced whatever their range. Spans of kind Server are inbound: their peer
is the caller. Masking is off by default and then costs nothing (the normalisers never call in).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from llmlens.pii import TEXT, address_role
from llmlens.server.store.columns import TABLES, MapColumn

if TYPE_CHECKING:
    from llmlens.pii import Redactor
    from llmlens.server.store.batch import Batch

# Filled by the normaliser itself, never with a sender's text.
NOT_TEXT = frozenset({
    "TraceId", "SpanId", "ParentSpanId", "Links.TraceId", "Links.SpanId", "Exemplars.TraceId", "Exemplars.SpanId",
    "SpanKind", "StatusCode", "Source",
})
INBOUND_KIND = "Server"  # SpanKind of a span whose peer is the caller
_INBOUND_MAP = "SpanAttributes"  # the column read as inbound on such spans

_STR = pa.string()
_MAP = pa.map_(pa.string(), pa.string())
_KINDS = {_STR: "text", _MAP: "map", pa.list_(_STR): "texts", pa.list_(_MAP): "maps"}


def _plan(table: str) -> list[tuple[int, str, str]]:
    """(index, column name, kind) of every column of `table` that holds a sender's strings."""
    return [(i, name, _KINDS[kind]) for i, (name, kind) in enumerate(TABLES[table])
            if kind in _KINDS and name not in NOT_TEXT]


PLANS = {table: _plan(table) for table in TABLES}


def mask_batch(batch: Batch, redactor: Redactor) -> None:
    """Mask, in place, every string the batch will store (its rows must not be frozen yet)."""
    rule = _BatchRule(redactor)
    for table, columns in batch.tables.items():
        for _, name, kind in PLANS[table]:
            columns[name] = rule.column(columns[name], kind)
    for table, rows in batch.row_lists.items():
        names = [name for name, _ in TABLES[table]]
        # A span's own attributes are read as inbound or not by its kind; every other cell alike.
        inbound_at = (names.index("SpanKind"), names.index(_INBOUND_MAP)) if _INBOUND_MAP in names else None
        steps = [(i, rule.cell_masker(kind)) for i, _, kind in PLANS[table]
                 if inbound_at is None or i != inbound_at[1]]
        attributes = rule.attributes
        for r, row in enumerate(rows):
            cells = list(row)
            for i, mask in steps:
                cells[i] = mask(cells[i])
            if inbound_at is not None:
                kind_at, attrs_at = inbound_at
                cells[attrs_at] = attributes(cells[attrs_at], cells[kind_at] == INBOUND_KIND)
            rows[r] = tuple(cells)


class _BatchRule:
    """The rule with memos for one batch: resources, service and scope names, span names and
    most attribute values repeat across its rows, and are masked once. Per cell and attribute
    this is the hot loop of a masked ingest, hence the inlined look-ups."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._free_text = redactor.mode != "drop"  # in drop mode an attribute with PII goes whole
        self._texts: dict[str, str] = {}
        self._roles: tuple[dict[str, str], dict[str, str]] = ({}, {})  # by key: outbound, inbound
        self._maps: dict[tuple[int, bool], tuple[dict, dict]] = {}  # by identity: shared resource dicts

    def text(self, value: str) -> str:
        masked = self._texts.get(value)
        if masked is None:
            masked = self._texts[value] = self.redactor.redact(value)
        return masked

    def attribute(self, key: str, value: str, inbound: bool = False) -> str | None:
        """One attribute's value, read with its key; None: leave it out (drop mode)."""
        roles = self._roles[inbound]
        role = roles.get(key)
        if role is None:
            role = roles[key] = address_role(key, inbound)
        if role == TEXT and self._free_text:
            masked = self._texts.get(value)
            if masked is None:
                masked = self._texts[value] = self.redactor.redact(value)
            return masked
        return self.redactor.redact_attribute(key, value, inbound=inbound)

    def attributes(self, attrs: dict[str, str], inbound: bool = False) -> dict[str, str]:
        if not attrs:
            return attrs
        memo_key = (id(attrs), inbound)
        seen = self._maps.get(memo_key)
        if seen is not None:
            return seen[1]
        attribute = self.attribute
        masked = {key: out for key, value in attrs.items() if (out := attribute(key, value, inbound)) is not None}
        self._maps[memo_key] = (attrs, masked)  # holds `attrs` so that its id is not reused
        return masked

    def cell_masker(self, kind: str) -> Callable[[Any], Any]:
        """What masks one row's value of a column of this kind."""
        if kind == "text":
            return self.text
        if kind == "map":
            return self.attributes
        if kind == "texts":
            text = self.text
            return lambda values: [text(v) for v in values] if values else values
        attributes = self.attributes
        return lambda maps: [attributes(m) for m in maps] if maps else maps

    def column(self, values: list | MapColumn, kind: str) -> list | MapColumn:
        """A whole column (tables built column by column)."""
        if isinstance(values, MapColumn):
            return self._map_column(values)
        return list(map(self.cell_masker(kind), values))

    def _map_column(self, column: MapColumn) -> MapColumn:
        attribute = self.attribute
        masked = [attribute(key, value) for key, value in zip(column.keys, column.values, strict=True)]
        if None not in masked:
            column.values = masked  # type: ignore[assignment]
            return column
        rebuilt = MapColumn()  # drop mode left some attributes out: rebuild the offsets
        offsets = column.offsets
        for lo, hi in zip(offsets, offsets[1:], strict=False):
            rebuilt.append({column.keys[i]: masked[i] for i in range(lo, hi) if masked[i] is not None})
        return rebuilt
