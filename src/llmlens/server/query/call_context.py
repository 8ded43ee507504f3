"""LLM calls with the session, user, app and department they inherit from their trace.

At ingest a call that sets none of these takes its nearest ancestor's, else its root's, among the
spans of its own export request (normalise/trace_context.py). Spans of one trace exported in other
requests (a BatchSpanProcessor exports a child LLM span before its request span) reach the call
here: trace_index holds each trace's facts as its spans set them (store/trace_index.py), and a call
whose own value is empty reads its trace's.

The cost is bounded: one join with the trace_index rows of the window's days that overlap the window
and set a fact. Overlap is exact for what a call inherits: the rows holding its ancestors (its root
among them) began before the call and ended after it. (Restricting them instead to the traces of the
window's calls that lack a fact, with an IN subquery, cost twice as much: benchmarks/call_context.py.)
Queries that neither select, group nor filter by these facts read llm_calls as it is.
"""

from __future__ import annotations

TRACE_COLUMNS = ("SessionId", "UserId", "App", "Department")


def _days(start: str, end: str) -> str:
    # A trace's rows sit under the day of each batch's first span: a call's may be a day later.
    return f"Day >= toDate({{{start}:DateTime64(9)}}) - 1 AND Day <= toDate({{{end}:DateTime64(9)}})"


def calls(start: str = "start", end: str = "end") -> str:
    """llm_calls from the parameter `start` to `end` (both DateTime64(9), both included: the outer
    query bounds its rows exactly) with the four facts completed; the same columns, so it stands in
    for `llm_calls` in FROM. ('' where neither the call nor its trace has the fact.)"""
    window = f"Timestamp >= {{{start}:DateTime64(9)}} AND Timestamp <= {{{end}:DateTime64(9)}}"
    return f"""(
    SELECT c.* REPLACE (if(c.SessionId != '', c.SessionId, t.TraceSessionId) AS SessionId,
                        if(c.UserId != '', c.UserId, t.TraceUserId) AS UserId,
                        if(c.App != '', toString(c.App), t.TraceApp) AS App,
                        if(c.Department != '', toString(c.Department), t.TraceDepartment) AS Department)
    FROM (SELECT * FROM llm_calls WHERE {window}) AS c
    LEFT JOIN (
        SELECT TraceId, max(SessionId) AS TraceSessionId, max(UserId) AS TraceUserId, max(App) AS TraceApp,
               max(Department) AS TraceDepartment
        FROM trace_index
        WHERE {_days(start, end)} AND Start <= {{{end}:DateTime64(9)}} AND End >= {{{start}:DateTime64(9)}}
          AND (SessionId != '' OR UserId != '' OR App != '' OR Department != '')
        GROUP BY TraceId
    ) AS t ON t.TraceId = c.TraceId
)"""


CALLS = calls()


def equals(column: str, param: str, start: str = "start", end: str = "end") -> str:
    """A condition over llm_calls: the call's `column`, else its trace's, equals the parameter `param`
    (a String). Cheaper than CALLS for a filter: only trace_index rows holding the value are read
    (measured: 1.8x a plain equality, against 2.7x for grouping the window's traces first). A trace
    whose spans set two values in different batches matches both here, and CALLS shows the larger."""
    if column not in TRACE_COLUMNS:
        raise ValueError(f"not a trace context column: {column}")
    return (f"({column} = {{{param}:String}} OR ({column} = '' AND TraceId IN ("
            f"SELECT TraceId FROM trace_index WHERE {_days(start, end)} AND {column} = {{{param}:String}})))")
