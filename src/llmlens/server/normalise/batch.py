"""What the normaliser hands to the store: columns per table, plus what was rejected."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmlens.server.store.columns import new_columns


@dataclass
class Batch:
    """Rows for one or more tables, built from one export request."""

    tables: dict[str, dict[str, list]] = field(default_factory=dict)
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

    @property
    def row_count(self) -> int:
        return sum(len(next(iter(cols.values()), [])) for cols in self.tables.values())

    def error_message(self) -> str:
        if not self.rejected:
            return ""
        more = "" if self.rejected <= len(self.errors) else f" (and {self.rejected - len(self.errors)} more)"
        return "; ".join(self.errors) + more
