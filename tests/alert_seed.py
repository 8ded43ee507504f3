"""Known rows for the alert tests: LLM calls and scores at chosen times, written through the real
store (its writer and its deduplication), so the rules' SQL reads exactly what ingest stores."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from llmlens.server.store import Store
from llmlens.server.store.batch import Batch
from llmlens.server.store.columns import TABLES


def reference_now() -> datetime:
    """A Wednesday at 12:00 UTC within the last week: budgets by day, week and month have fixed
    answers around it, and every row stays inside the store's retention."""
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    while now.weekday() != 2 or now > datetime.now(UTC):
        now -= timedelta(days=1)
    return now


def ns(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000) * 1000


def llm_call(at: datetime, *, app: str, model: str = "m1", cost: float = 0.0, error: bool = False,
             duration_s: float = 1.0, error_type: str = "", priced: bool = True, user: str = "u1",
             department: str = "d1", ttft_ms: float | None = None, operation: str = "chat") -> dict[str, Any]:
    return dict(Timestamp=ns(at), TraceId=os.urandom(16).hex(), SpanId=os.urandom(8).hex(), ServiceName="svc",
                SpanName="chat", Duration=int(duration_s * 1e9), IsError=error, Convention="genai",
                Operation=operation, Provider="openai", RequestModel=model, ResponseModel=model, InputTokens=100,
                OutputTokens=20, CachedInputTokens=0, ReasoningTokens=0, CostUsd=cost, Priced=priced,
                Streaming=ttft_ms is not None, TtftMs=ttft_ms, FinishReasons=[], ErrorType=error_type, App=app,
                Department=department, UserId=user, SessionId="", Input="", Output="")


def score(at: datetime, *, app: str, name: str, value: float) -> dict[str, Any]:
    return dict(Timestamp=ns(at), TraceId=os.urandom(16).hex(), SpanId=os.urandom(8).hex(), ServiceName="svc",
                App=app, Name=name, Value=value, Label="", Comment="", Source="test")


def write(store: Store, calls: Iterable[dict[str, Any]] = (), scores: Iterable[dict[str, Any]] = ()) -> None:
    batch = Batch()
    for table, rows in (("llm_calls", list(calls)), ("llm_scores", list(scores))):
        if rows:
            columns = batch.columns(table)
            kinds = dict(TABLES[table])
            for row in rows:
                for name, column in columns.items():  # columns the tests do not set get an empty value
                    column.append(row[name] if name in row else _empty(kinds[name]))
            batch.accepted += len(rows)
    store.write_sync(batch.freeze(), timeout=60)


def _empty(kind: pa.DataType) -> Any:
    if pa.types.is_list(kind):
        return []
    if pa.types.is_string(kind) or pa.types.is_dictionary(kind):
        return ""
    if pa.types.is_boolean(kind):
        return False
    return 0
