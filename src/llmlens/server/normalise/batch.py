"""What the normaliser hands to the store: columns or rows per table (Arrow once frozen), plus what
was rejected."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from llmlens.server.store import trace_index
from llmlens.server.store.columns import TIME_COLUMN, new_columns, rows_to_arrow, to_arrow


@dataclass
class Batch:
    """Rows for one or more tables, built from one export request."""

    tables: dict[str, dict[str, list]] = field(default_factory=dict)  # built column by column
    row_lists: dict[str, list[tuple]] = field(default_factory=dict)  # built row by row (the busiest tables)
    arrow: dict[str, pa.Table] = field(default_factory=dict)
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

    def freeze(self) -> Batch:
        """Turn the rows into Arrow tables, with the trace_index rows that summarise them (done
        where the batch is built, in parallel workers, off the single writer thread)."""
        if not self.tables and not self.row_lists:
            return self
        for table, cols in self.tables.items():
            if len(cols[TIME_COLUMN[table]]):
                self.arrow[table] = to_arrow(table, cols)
        for table, rows in self.row_lists.items():
            if rows:
                self.arrow[table] = rows_to_arrow(table, rows)
        self.tables, self.row_lists = {}, {}
        summary = trace_index.of_batch(self.arrow)
        if summary is not None:
            self.arrow[trace_index.TABLE] = summary
        return self

    @property
    def row_count(self) -> int:
        """Rows received (the derived trace_index rows are not counted)."""
        if self.arrow:
            return sum(t.num_rows for name, t in self.arrow.items() if name in TIME_COLUMN)
        return (sum(len(cols[TIME_COLUMN[name]]) for name, cols in self.tables.items())
                + sum(map(len, self.row_lists.values())))

    def error_message(self) -> str:
        if not self.rejected:
            return ""
        more = "" if self.rejected <= len(self.errors) else f" (and {self.rejected - len(self.errors)} more)"
        return "; ".join(self.errors) + more
