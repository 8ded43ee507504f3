"""Read-only ClickHouse SQL over the store, answered as JSON with column names and types.

POST takes {"query": "..."}; GET takes ?query=... (what the SQL page sends: a browser's session
cookie counts on GET only, and a read is safe to repeat). Limits are the [sql] settings."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from llmlens.server.sql.engine import MAX_QUERY_CHARS, SqlEngine

router = APIRouter(tags=["sql"])

_RESULT_FORMAT = "JSONCompact"


class SqlQuery(BaseModel):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS,
                       description="one ClickHouse SELECT, WITH, SHOW, DESCRIBE, EXISTS or EXPLAIN statement")


@router.post("/api/v1/sql")
async def post_sql(request: Request, body: SqlQuery) -> Response:
    """Run one read-only ClickHouse SQL statement over the store. Answers `columns` (name, type),
    `rows` (arrays in column order), `row_count` and statistics. Writes, DDL, setting changes,
    file/URL table functions and system tables beyond the catalogue are refused (400,
    `sql_refused`); bad SQL is a 400 with ClickHouse's message (`sql_error`); a result over the
    [sql] row, byte or memory limit a 413; a query past the time limit a 504."""
    return await _run(request, body.query)


@router.get("/api/v1/sql")
async def get_sql(request: Request,
                  query: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)]) -> Response:
    """The same as POST, with the statement in `query` (for links and the SQL page)."""
    return await _run(request, query)


@router.get("/api/v1/sql/schema")
async def sql_schema(request: Request) -> dict[str, Any]:
    """The store's tables and views with their columns and types, for writing SQL."""
    store = request.app.state.store
    tables = await store.fetch(
        "SELECT name, engine, total_rows, comment FROM system.tables "
        "WHERE database = currentDatabase() AND NOT is_temporary ORDER BY name")
    columns = await store.fetch(
        "SELECT table, name, type, comment FROM system.columns WHERE database = currentDatabase() "
        "ORDER BY table, position")
    by_table: dict[str, list[dict[str, str]]] = {}
    for c in columns:
        by_table.setdefault(c["table"], []).append({"name": c["name"], "type": c["type"], "comment": c["comment"]})
    return {"database": request.app.state.sql_engine.database, "tables": [
        {"name": t["name"], "engine": t["engine"], "rows": None if t["total_rows"] is None else int(t["total_rows"]),
         "comment": t["comment"], "columns": by_table.get(t["name"], [])} for t in tables]}


async def _run(request: Request, sql: str) -> Response:
    engine: SqlEngine = request.app.state.sql_engine
    result = await engine.run(sql, _RESULT_FORMAT, allow_format=False)
    answer = orjson.loads(result.body) if result.body.strip() else {"meta": [], "data": []}
    stats = answer.get("statistics") or {}
    return Response(orjson.dumps({
        "columns": answer.get("meta", []),
        "rows": answer.get("data", []),
        "row_count": len(answer.get("data", [])),
        "rows_before_limit": answer.get("rows_before_limit_at_least"),
        "statistics": {"elapsed_s": round(result.elapsed_s, 6), "rows_read": stats.get("rows_read", result.rows_read),
                       "bytes_read": stats.get("bytes_read", result.bytes_read)},
        "limits": {"timeout_s": engine.limits.timeout_s, "max_result_rows": engine.limits.max_result_rows},
    }), media_type="application/json")
