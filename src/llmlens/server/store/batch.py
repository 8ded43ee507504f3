"""The normalise -> store contract: rows per table (Arrow once frozen), what was rejected, and what
derivations computed from the rows.

A derivation runs on each frozen batch where it is built (an ingest worker, in parallel, off the
single writer thread): `trace_index` rows are one, the span metrics' per-batch aggregates another.
It may add a table to insert (`batch.arrow[name]`) or a small value for a commit listener
(`batch.derived[name]`). The writer runs the derivations again on a batch it had to trim (rows
already stored), so what listeners see is exactly what was committed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from llmlens.server.store import trace_index
from llmlens.server.store.columns import TIME_COLUMN, new_columns, rows_to_arrow, to_arrow

Derivation = Callable[["Batch"], None]
"""Reads a frozen batch's `arrow` tables; adds to its `arrow` (tables) or `derived` (values)."""

DEFAULT_DERIVATIONS: tuple[Derivation, ...] = (trace_index.derive,)


@dataclass
class Batch:
    """Rows for one or more tables, built from one export request."""

    tables: dict[str, dict[str, list]] = field(default_factory=dict)  # built column by column
    row_lists: dict[str, list[tuple]] = field(default_factory=dict)  # built row by row (the busiest tables)
    arrow: dict[str, pa.Table] = field(default_factory=dict)
    derived: dict[str, Any] = field(default_factory=dict)  # derivations' values for commit listeners
    derived_by: tuple[Derivation, ...] = ()  # what freeze() ran: the writer re-runs it on a trimmed batch
    request_digest: str = ""  # set for signals whose rows have no ids (logs, metrics): see dedup.py
    accepted: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def columns(self, table: str) -> dict[str, list]:
        cols = self.tables.get(table)
        if cols is None:
            cols = self.tables[table] = new_columns(table)
        return cols

    def rows(self, table: str) -> list[tuple]:
        """Rows of a table, each a tuple in its column order (columns.TABLES)."""
        rows = self.row_lists.get(table)
        if rows is None:
            rows = self.row_lists[table] = []
        return rows

    def reject(self, why: str) -> None:
        self.rejected += 1
        if len(self.errors) < 5:  # enough to explain; a flood of reasons helps nobody
            self.errors.append(why)

    def freeze(self, derivations: Sequence[Derivation] = DEFAULT_DERIVATIONS) -> Batch:
        """Turn the rows into Arrow tables, then run the derivations on them."""
        if not self.tables and not self.row_lists:
            return self
        for table, cols in self.tables.items():
            if len(cols[TIME_COLUMN[table]]):
                self.arrow[table] = to_arrow(table, cols)
        for table, rows in self.row_lists.items():
            if rows:
                self.arrow[table] = rows_to_arrow(table, rows)
        self.tables, self.row_lists = {}, {}
        self.derive(derivations)
        return self

    def derive(self, derivations: Sequence[Derivation] | None = None) -> None:
        """(Re)compute every derived table and value from the received tables (by default with the
        derivations that ran before)."""
        derivations = self.derived_by if derivations is None else tuple(derivations)
        for name in [n for n in self.arrow if n not in TIME_COLUMN]:
            del self.arrow[name]
        self.derived = {}
        self.derived_by = derivations
        for derivation in derivations:
            derivation(self)

    @property
    def row_count(self) -> int:
        """Rows received (derived rows such as trace_index are not counted)."""
        if self.arrow:
            return sum(t.num_rows for name, t in self.arrow.items() if name in TIME_COLUMN)
        return (sum(len(cols[TIME_COLUMN[name]]) for name, cols in self.tables.items())
                + sum(map(len, self.row_lists.values())))

    def error_message(self) -> str:
        if not self.rejected:
            return ""
        more = "" if self.rejected <= len(self.errors) else f" (and {self.rejected - len(self.errors)} more)"
        return "; ".join(self.errors) + more
