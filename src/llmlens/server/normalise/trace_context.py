"""Session, user, app and department inherited within the spans of one export request.

An app that sets `session.id` on its request span (openai-v2 users do) gets it on the LLM calls
under it: a call lacking a fact takes its nearest ancestor's, else its trace's root span's, among the
spans of the same request (semconv.inherited_context). Spans of one trace exported in different
requests are joined at query time instead (the trace view; see query/trace_context.py).
"""

from __future__ import annotations

from typing import Any

from llmlens import semconv
from llmlens.server.store.columns import TABLES

_CALL_COLUMNS = [name for name, _ in TABLES["llm_calls"]]
_FIELD_COLUMNS = {"app": _CALL_COLUMNS.index("App"), "department": _CALL_COLUMNS.index("Department"),
                  "user_id": _CALL_COLUMNS.index("UserId"), "session_id": _CALL_COLUMNS.index("SessionId")}


class TraceContext:
    """Parent links and context facts of a request's spans, per trace; LLM call rows to complete."""

    __slots__ = ("calls", "facts", "parents", "roots")

    def __init__(self) -> None:
        self.parents: dict[str, dict[str, str]] = {}  # trace -> span -> parent
        self.facts: dict[str, dict[str, dict[str, str]]] = {}  # trace -> span -> its own context facts
        self.roots: dict[str, str] = {}  # trace -> root span id
        self.calls: list[tuple[str, str, int]] = []  # (trace, span, row index in llm_calls)

    def add_span(self, trace_id: str, span_id: str, parent_span_id: str, attributes: Any) -> None:
        self.parents.setdefault(trace_id, {})[span_id] = parent_span_id
        if not parent_span_id:
            self.roots[trace_id] = span_id
        own = semconv.context_facts(attributes)
        if own:
            self.facts.setdefault(trace_id, {})[span_id] = own

    def fill(self, rows: list[tuple]) -> None:
        """Complete the LLM call rows whose context facts are empty (rows are tuples: replaced)."""
        for trace_id, span_id, index in self.calls:
            facts = self.facts.get(trace_id)
            if not facts:
                continue
            row = rows[index]
            if all(row[column] for column in _FIELD_COLUMNS.values()):
                continue
            inherited = semconv.inherited_context(self.parents[trace_id], facts, span_id, self.roots.get(trace_id))
            if inherited:
                values = list(row)
                for name, column in _FIELD_COLUMNS.items():
                    if not values[column] and inherited.get(name):
                        values[column] = inherited[name]
                rows[index] = tuple(values)
