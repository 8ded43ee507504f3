"""What the normaliser hands to the store: columns per table, plus what was rejected."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from llmlens.server.store import trace_index
from llmlens.server.store.columns import TIME_COLUMN, new_columns, to_arrow


@dataclass
class Batch:
    """Rows for one or more tables, built from one export request."""

    tables: dict[str, dict[str, list]] = field(default_factory=dict)
    arrow: dict[str, pa.Table] = field(default_factory=dict)
    accepted: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def columns(self, table: str) -> dict[str, list]:
        cols = self.tables.get(table)
        if cols is None:
            cols = self.tables[table] = new_columns(table)
        return cols

    def reject(self, why: str) -> None:
        self.rejected += 1
        if len(self.errors) < 5:  # enough to explain; a flood of reasons helps nobody
            self.errors.append(why)

    def freeze(self) -> Batch:
        """Turn the rows into Arrow tables, with the trace_index rows that summarise them (done
        where the batch is built, in parallel workers, off the single writer thread)."""
        if not self.tables:
            return self
        for table, cols in self.tables.items():
            if len(cols[TIME_COLUMN[table]]):
                self.arrow[table] = to_arrow(table, cols)
        self.tables = {}
        summary = trace_index.of_batch(self.arrow)
        if summary is not None:
            self.arrow[trace_index.TABLE] = summary
        return self

    @property
    def row_count(self) -> int:
        """Rows received (the derived trace_index rows are not counted)."""
        if self.arrow:
            return sum(t.num_rows for name, t in self.arrow.items() if name in TIME_COLUMN)
        return sum(len(cols[TIME_COLUMN[name]]) for name, cols in self.tables.items())

    def error_message(self) -> str:
        if not self.rejected:
            return ""
        more = "" if self.rejected <= len(self.errors) else f" (and {self.rejected - len(self.errors)} more)"
        return "; ".join(self.errors) + more
