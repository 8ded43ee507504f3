"""Proof that an embedded insert stored its rows.

chDB's streaming insert (`send_insert(...).append(); finish()`) returns normally, with
`rows_written` filled in and no error, when the part cannot be written: no space left on the
disk, a read-only folder. The rows are simply not there. (A plain INSERT query raises
NOT_ENOUGH_SPACE; the streaming one does not.) So after each streaming insert we look for the
part it made.

How: every new part of a MergeTree table takes the next block number of that table, and a part
straight from an insert covers that one number (a merge covers a range, and its sources stay on
disk, outdated, for minutes). The writer inserts into each table from one thread at a time, one
day partition a block, so the one-block parts above the table's highest block number before the
insert are this insert's. A failed insert takes a block number but makes no part, so it is seen
as missing, never as someone else's part.

Where to look: a committed part is a folder named `<partition>_<min block>_<max block>_<level>`
in the table's data folder (it is written as `tmp_insert_...` and renamed when complete). Listing
that folder costs ~0.03 ms; the same question put to system.parts cost ~2.5 ms of CPU (chDB,
70 parts), ~8 us a span on benchmarks/ingest.py. A block small enough to make exactly one part
(below the engine's squashing thresholds) is proven by its part's folder; anything else (a huge
block, an unexpected number of parts, no local folder) is counted row by row in system.parts.

A block the writer sends again after it was confirmed is not inserted again: the engine would
drop the resend as a duplicate anyway, and skipping it keeps the check exact for resends too.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from llmlens.server.errors import StoreError

Fetch = Callable[[str, Mapping[str, Any] | None], list[dict[str, Any]]]

_REMEMBERED = 4096  # confirmed tokens and claimed block numbers kept (a commit makes a handful)
# Well below the engine's squashing thresholds (min_insert_block_size_rows 1,048,449 and _bytes
# 256 MiB): a block under both becomes one part (per partition, and the writer sends one).
_ONE_PART_ROWS = 500_000
_ONE_PART_BYTES = 64 * 1024 * 1024

_FOLDER = ("SELECT data_paths AS paths FROM system.tables "
           "WHERE database = currentDatabase() AND name = {t:String}")
_TOP = ("SELECT max(max_block_number) AS top FROM system.parts "
        "WHERE database = currentDatabase() AND table = {t:String}")
_NEW_PARTS = ("SELECT min_block_number AS block, max(rows) AS rows FROM system.parts "
              "WHERE database = currentDatabase() AND table = {t:String} AND min_block_number = max_block_number "
              "AND min_block_number > {base:Int64} GROUP BY block")


class NotStored(StoreError):
    """An insert reported success but its rows are not in the table."""


class InsertCheck:
    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch  # run on the inserting thread (chDB: a connection per thread)
        self._folders: dict[str, Path | None] = {}
        self._top: dict[str, int] = {}  # per table: highest block number known to be taken
        self._base: OrderedDict[str, int] = OrderedDict()  # unconfirmed token -> the table's top before it
        self._confirmed: OrderedDict[str, None] = OrderedDict()
        self._claimed: dict[str, deque[int]] = {}  # per table: block numbers of confirmed inserts
        self._lock = threading.Lock()

    def confirmed(self, token: str) -> bool:
        """Whether the block with this deduplication token is known to be stored."""
        with self._lock:
            return token in self._confirmed

    def before(self, table: str, token: str) -> None:
        """Call just before inserting the block: remembers where the table's parts stood. A token
        tried before keeps its first base, so a part made by an earlier try still counts."""
        with self._lock:
            if token in self._base:
                return
            top = self._top.get(table)
        if top is None:
            top = self._current_top(table)
        with self._lock:
            self._top[table] = max(top, self._top.get(table, 0))
            self._base[token] = top
            while len(self._base) > _REMEMBERED:
                self._base.popitem(last=False)

    def after(self, table: str, token: str, data: pa.Table) -> None:
        """Call after the insert returned: raises NotStored unless the block's rows are in the table."""
        with self._lock:
            base = self._base.get(token, self._top.get(table, 0))
            claimed = set(self._claimed.get(table, ()))
        blocks = self._new_blocks_on_disk(table, base, claimed)
        one_part = data.num_rows < _ONE_PART_ROWS and data.nbytes < _ONE_PART_BYTES
        if blocks is None or len(blocks) > 1 or (len(blocks) == 1 and not one_part):
            blocks = self._new_blocks_counted(table, base, claimed, data.num_rows)
        elif not blocks:
            raise NotStored(f"an insert into {table} reported success but none of its {data.num_rows} rows "
                            "are stored (is the data directory's disk full or read-only?)")
        with self._lock:
            self._base.pop(token, None)
            self._confirmed[token] = None
            while len(self._confirmed) > _REMEMBERED:
                self._confirmed.popitem(last=False)
            self._claimed.setdefault(table, deque(maxlen=_REMEMBERED)).extend(blocks)
            self._top[table] = max([self._top.get(table, 0), *blocks])

    def _new_blocks_counted(self, table: str, base: int, claimed: set[int], rows_sent: int) -> list[int]:
        parts = [p for p in self._fetch(_NEW_PARTS, {"t": table, "base": base}) if int(p["block"]) not in claimed]
        stored = sum(int(p["rows"]) for p in parts)
        if stored != rows_sent:
            raise NotStored(f"an insert into {table} reported success but {stored} of its {rows_sent} rows "
                            "are stored (is the data directory's disk full or read-only?)")
        return [int(p["block"]) for p in parts]

    def _current_top(self, table: str) -> int:
        parts = self._parts_on_disk(table)
        if parts is not None:
            return max((high for _, high in parts), default=0)
        rows = self._fetch(_TOP, {"t": table})
        return int(rows[0]["top"] or 0) if rows else 0

    def _new_blocks_on_disk(self, table: str, base: int, claimed: set[int]) -> list[int] | None:
        parts = self._parts_on_disk(table)
        if parts is None:
            return None
        return sorted({low for low, high in parts if low == high and low > base and low not in claimed})

    def _parts_on_disk(self, table: str) -> list[tuple[int, int]] | None:
        """(min block, max block) of every committed part folder of the table; None if it has no
        single local folder to list."""
        if table not in self._folders:
            rows = self._fetch(_FOLDER, {"t": table})
            paths = rows[0]["paths"] if rows else []
            self._folders[table] = Path(paths[0]) if len(paths) == 1 and Path(paths[0]).is_dir() else None
        folder = self._folders[table]
        if folder is None:
            return None
        try:
            names = os.listdir(folder)
        except OSError:
            return None
        return [blocks for blocks in map(_part_blocks, names) if blocks is not None]


def _part_blocks(name: str) -> tuple[int, int] | None:
    """`20261204_17_17_0` (or with a mutation number after the level) -> (17, 17); None for
    anything else in the folder (tmp_insert_..., detached, format_version.txt)."""
    fields = name.split("_")
    if len(fields) not in (4, 5) or not all(f.isdigit() for f in fields[1:]) or name.startswith(("tmp", "delete")):
        return None
    return int(fields[1]), int(fields[2])
