"""Proof that an embedded insert stored its rows.

chDB's streaming insert (`send_insert(...).append(); finish()`) returns normally, with
`rows_written` filled in and no error, when the part cannot be written: no space left on the
disk, a read-only folder. The rows are simply not there. (A plain INSERT query raises
NOT_ENOUGH_SPACE; the streaming one does not.) So after each streaming insert we look for the
part it made.

How: every new part of a MergeTree table takes the next block number of that table, and a part
straight from an insert covers that one number (a merge covers a range; its sources stay listed
in system.parts, inactive, for minutes; the level is no guide: an insert into an aggregating
table is written at level 1). The writer inserts into each table from one thread at a time, so
the one-block parts above the table's highest block number before the insert are this insert's;
their rows must add up to the rows sent. A failed insert takes a block number but makes no part,
so it is seen as missing, never as someone else's part.

One query to system.parts per insert (the "before" number is remembered per table), and none
for a block the writer sends again after it was confirmed: that resend would be dropped by the
engine's deduplication anyway, and dropping it here makes the check exact for resends too.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from typing import Any

from llmlens.server.errors import StoreError

Fetch = Callable[[str, Mapping[str, Any] | None], list[dict[str, Any]]]

_REMEMBERED = 4096  # confirmed tokens and claimed block numbers kept (a commit makes a handful)

_TOP = ("SELECT max(max_block_number) AS top FROM system.parts "
        "WHERE database = currentDatabase() AND table = {t:String}")
_NEW_PARTS = ("SELECT min_block_number AS block, max(rows) AS rows FROM system.parts "
              "WHERE database = currentDatabase() AND table = {t:String} AND min_block_number = max_block_number "
              "AND min_block_number > {base:Int64} GROUP BY block")


class NotStored(StoreError):
    """An insert reported success but its rows are not in the table."""


class InsertCheck:
    def __init__(self) -> None:
        self._top: dict[str, int] = {}  # per table: highest block number known to be taken
        self._base: OrderedDict[str, tuple[str, int]] = OrderedDict()  # unconfirmed token -> (table, base)
        self._confirmed: OrderedDict[str, None] = OrderedDict()
        self._claimed: dict[str, deque[int]] = {}  # per table: block numbers of confirmed inserts
        self._lock = threading.Lock()

    def confirmed(self, token: str) -> bool:
        """Whether the block with this deduplication token is known to be stored."""
        with self._lock:
            return token in self._confirmed

    def before(self, table: str, token: str, fetch: Fetch) -> None:
        """Call just before inserting the block: remembers where the table's parts stood. A token
        tried before keeps its first base, so a part made by an earlier try still counts."""
        with self._lock:
            if token in self._base:
                return
            top = self._top.get(table)
        if top is None:
            rows = fetch(_TOP, {"t": table})
            top = int(rows[0]["top"] or 0) if rows else 0
        with self._lock:
            self._top[table] = max(top, self._top.get(table, 0))
            self._base[token] = (table, top)
            while len(self._base) > _REMEMBERED:
                self._base.popitem(last=False)

    def after(self, table: str, token: str, rows_sent: int, fetch: Fetch) -> None:
        """Call after the insert returned: raises NotStored unless the block's rows are in the table."""
        with self._lock:
            _, base = self._base.get(token, (table, self._top.get(table, 0)))
            claimed = set(self._claimed.get(table, ()))
        parts = [p for p in fetch(_NEW_PARTS, {"t": table, "base": base}) if int(p["block"]) not in claimed]
        stored = sum(int(p["rows"]) for p in parts)
        if stored != rows_sent:
            raise NotStored(f"an insert into {table} reported success but {stored} of its {rows_sent} rows "
                            "are stored (is the data directory's disk full or read-only?)")
        with self._lock:
            self._base.pop(token, None)
            self._confirmed[token] = None
            while len(self._confirmed) > _REMEMBERED:
                self._confirmed.popitem(last=False)
            blocks = [int(p["block"]) for p in parts]
            self._claimed.setdefault(table, deque(maxlen=_REMEMBERED)).extend(blocks)
            self._top[table] = max([self._top.get(table, 0), *blocks])
