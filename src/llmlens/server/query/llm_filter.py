"""The UI's common filters over llm_calls (service, app, department, model, user) as SQL + params."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmlens.semconv import MODEL_OPERATIONS
from llmlens.server.query import call_context
from llmlens.server.query.window import Window

# Filter name -> condition over llm_calls; each reads the parameter f_<name>. User and session: the
# call's own, else its trace's (set on a span exported in another request: query/call_context.py).
_CONDITIONS = {
    "service": "ServiceName = {f_service:String}",
    "app": "App = {f_app:String}",
    "department": "Department = {f_department:String}",
    "model": "(RequestModel = {f_model:String} OR ResponseModel = {f_model:String})",
    "user": call_context.equals("UserId", "f_user"),
    "session": call_context.equals("SessionId", "f_session"),
}
FILTER_NAMES = tuple(_CONDITIONS)
# Tool, retrieval and agent steps have llm_calls rows too; "requests" means model calls only,
# as in /api/v1/llm/stats. The operation names are constants, never user text.
MODEL_CALLS = "Operation IN (" + ", ".join(f"'{op}'" for op in MODEL_OPERATIONS) + ")"


@dataclass(frozen=True)
class LlmFilter:
    """A time window plus equality filters; empty values mean "any"."""

    window: Window
    values: dict[str, str]

    @classmethod
    def of(cls, window: Window, **values: str | None) -> LlmFilter:
        unknown = set(values) - set(_CONDITIONS)
        if unknown:
            raise ValueError(f"unknown filters: {sorted(unknown)}")
        return cls(window, {k: v for k, v in values.items() if v})

    def where(self) -> str:
        """Model calls in the window passing every given filter, joined with AND."""
        parts = ["Timestamp >= {start:DateTime64(9)}", "Timestamp < {end:DateTime64(9)}", MODEL_CALLS]
        parts += [_CONDITIONS[name] for name in self.values]
        return " AND ".join(parts)

    def params(self) -> dict[str, Any]:
        return {**self.window.params(), **{f"f_{k}": v for k, v in self.values.items()}}
