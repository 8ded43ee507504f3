"""A TraceQL-like query language compiled to parameterised ClickHouse SQL.

    { resource.service.name = "chatbot" && span.gen_ai.usage.input_tokens > 100 }
    { duration > 2s } && { status = error }

A query is parsed with a lark grammar (traceql.lark), checked, and compiled to SQL fragments
over ``otel_traces AS s`` LEFT JOIN ``llm_calls AS l`` (on TraceId and SpanId). User text never
enters the SQL: every literal and every attribute key becomes a ``{qN:Type}`` parameter.

The normalised LLM facts answer to their GenAI names (``span.gen_ai.usage.input_tokens``)
whatever convention the span arrived in, because they read the typed ``llm_calls`` columns.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from llmlens.semconv import MODEL_OPERATIONS

MAX_QUERY_CHARS = 4000
MAX_CONDITIONS = 64
MAX_SPANSETS = 16

SPAN = "s"  # alias of otel_traces in the compiled SQL
LLM = "l"  # alias of llm_calls

# Duration units in nanoseconds.
_UNITS_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
             "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000}
_STATUS = {"ok": "Ok", "error": "Error", "unset": "Unset"}
_KINDS = {"unspecified": "Unspecified", "internal": "Internal", "server": "Server",
          "client": "Client", "producer": "Producer", "consumer": "Consumer"}

_STRING_OPS = {"=", "!=", "=~", "!~", ">", ">=", "<", "<="}
_ORDER_OPS = {"=", "!=", ">", ">=", "<", "<="}
_EQUALITY_OPS = {"=", "!="}


class TraceQLError(ValueError):
    """A query that cannot be parsed or compiled; ``position`` is a 0-based offset into it."""

    def __init__(self, message: str, position: int, query: str = "") -> None:
        self.position = position
        line = query.count("\n", 0, position) + 1
        column = position - (query.rfind("\n", 0, position) + 1) + 1
        self.line, self.column = line, column
        super().__init__(f"{message} (line {line}, column {column})")
        self.reason = message


@dataclass(frozen=True)
class Field:
    """What a field name resolves to: an SQL expression, its type and when it is present."""

    sql: str
    type: str  # "string" | "number" | "duration" | "status" | "kind"
    present: str | None = None  # SQL that is true when the span has this field
    uses_llm: bool = False
    ns_per_unit: float = 1.0  # for durations compared with a number-valued field


@dataclass(frozen=True)
class CompiledQuery:
    """SQL fragments over ``s`` (otel_traces) and ``l`` (llm_calls) plus their parameters.

    ``where`` keeps the spans that can matter; ``having`` (None for a single span set) decides
    per trace (GROUP BY TraceId) how span sets combine.
    """

    where: str
    having: str | None
    params: dict[str, Any]
    uses_llm: bool
    spansets: int = 1


# When a span "has" a normalised fact (TraceQL: a missing attribute never matches). A span with no
# llm_calls row gets the LEFT JOIN's defaults ('' / 0 / NULL), and tool or retrieval steps have rows
# without model facts, so: text facts are present when non-empty, counts and cost on model calls,
# nullable facts when not NULL. The operation names are constants, never user text.
_MODEL_CALL = f"{LLM}.Operation IN (" + ", ".join(f"'{op}'" for op in MODEL_OPERATIONS) + ")"


def _text(column: str) -> Field:
    return Field(f"{LLM}.{column}", "string", f"{LLM}.{column} != ''", True)


def _count(column: str) -> Field:
    return Field(f"{LLM}.{column}", "number", _MODEL_CALL, True)


_TTFT_PRESENT = f"{LLM}.TtftMs IS NOT NULL"
_MODEL_SQL = f"if({LLM}.RequestModel != '', {LLM}.RequestModel, {LLM}.ResponseModel)"

# GenAI names of the normalised facts -> typed llm_calls columns.
_LLM_FIELDS: dict[str, Field] = {
    "gen_ai.operation.name": _text("Operation"),
    "gen_ai.provider.name": _text("Provider"),
    "gen_ai.system": _text("Provider"),
    "gen_ai.request.model": _text("RequestModel"),
    "gen_ai.response.model": _text("ResponseModel"),
    "gen_ai.usage.input_tokens": _count("InputTokens"),
    "gen_ai.usage.prompt_tokens": _count("InputTokens"),
    "gen_ai.usage.output_tokens": _count("OutputTokens"),
    "gen_ai.usage.completion_tokens": _count("OutputTokens"),
    "gen_ai.usage.cache_read.input_tokens": _count("CachedInputTokens"),
    "gen_ai.usage.reasoning.output_tokens": _count("ReasoningTokens"),
    "gen_ai.conversation.id": _text("SessionId"),
    "gen_ai.request.stream": Field(f"toString({LLM}.Streaming)", "string", f"{LLM}.Streaming IS NOT NULL", True),
    "gen_ai.response.time_to_first_chunk": Field(f"{LLM}.TtftMs / 1000", "number", _TTFT_PRESENT, True, 1e9),
    "gen_ai.response.finish_reasons": Field(f"arrayStringConcat({LLM}.FinishReasons, ',')", "string",
                                            f"notEmpty({LLM}.FinishReasons)", True),
}
# llmlens' own normalised facts, addressable as intrinsics.
_LLM_INTRINSICS: dict[str, Field] = {
    "cost": _count("CostUsd"),
    "ttft": Field(f"{LLM}.TtftMs", "duration", _TTFT_PRESENT, True, 1e6),
    "app": _text("App"),
    "department": _text("Department"),
    "user": _text("UserId"),
    "session": _text("SessionId"),
    "errorType": _text("ErrorType"),
    "model": Field(_MODEL_SQL, "string", f"{_MODEL_SQL} != ''", True),
    # The tools a model call asked for, or the tool a step ran (any convention): { tool = "get_weather" }
    "tool": Field(f"{LLM}.ToolNames", "array", f"notEmpty({LLM}.ToolNames)", True),
}
_SPAN_INTRINSICS: dict[str, Field] = {
    "name": Field(f"{SPAN}.SpanName", "string"),
    "status": Field(f"{SPAN}.StatusCode", "status"),
    "statusMessage": Field(f"{SPAN}.StatusMessage", "string"),
    "kind": Field(f"{SPAN}.SpanKind", "kind"),
    "duration": Field(f"{SPAN}.Duration", "duration"),
    "service": Field(f"{SPAN}.ServiceName", "string"),
}
INTRINSICS = sorted([*_SPAN_INTRINSICS, *_LLM_INTRINSICS])

_TERMINAL_NAMES = {
    "LBRACE": "'{'", "RBRACE": "'}'", "LPAR": "'('", "RPAR": "')'", "OP": "an operator (=, !=, >, =~ ...)",
    "FIELD": "a field (name, duration, span.x, resource.x)", "STRING": "a quoted string",
    "NUMBER": "a number", "DURATION": "a duration (2s, 150ms)", "__ANON_0": "'||'", "__ANON_1": "'&&'",
    "$END": "end of query",
}


@cache
def _parser() -> Lark:
    grammar = (Path(__file__).with_name("traceql.lark")).read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", maybe_placeholders=False)


def parse(query: str) -> Tree:
    """Parse a query into a lark tree, or raise TraceQLError with the position of the problem."""
    if len(query) > MAX_QUERY_CHARS:
        raise TraceQLError(f"query is longer than {MAX_QUERY_CHARS} characters", MAX_QUERY_CHARS, query)
    if not query.strip():
        raise TraceQLError("empty query: try { } or { duration > 2s }", 0, query)
    try:
        return _parser().parse(query)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, query) from None


def _syntax_error(exc: UnexpectedInput, query: str) -> TraceQLError:
    if isinstance(exc, UnexpectedCharacters):
        char = query[exc.pos_in_stream] if exc.pos_in_stream < len(query) else ""
        hint = " (text values go in double quotes)" if char in "'`" else ""
        return TraceQLError(f"unexpected character {char!r}{hint}", exc.pos_in_stream, query)
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        expected = _describe_expected(getattr(exc, "expected", None) or getattr(exc, "accepts", None))
        return TraceQLError(f"query ends too early{expected}", len(query), query)
    assert isinstance(exc, UnexpectedToken)
    token = exc.token
    expected = _describe_expected(exc.accepts or exc.expected)
    return TraceQLError(f"unexpected {str(token)!r}{expected}", token.start_pos or 0, query)


def _describe_expected(names: Any) -> str:
    if not names:
        return ""
    if {"STRING", "NUMBER"} <= set(names):
        return ": expected a value (a number, a duration like 2s, \"quoted text\", or a word like error or server)"
    described = sorted({_TERMINAL_NAMES.get(n, n) for n in names})
    return ": expected " + " or ".join(described)


def compile_query(query: str) -> CompiledQuery:
    """Parse and compile ``query``; raise TraceQLError on any problem, with its position."""
    tree = parse(query)
    try:
        return _Compiler(query).compile(tree)
    except RecursionError:
        raise TraceQLError("query is nested too deeply", 0, query) from None


@dataclass
class _Compiler:
    query: str
    params: dict[str, Any] = field(default_factory=dict)
    spanset_sql: list[str] = field(default_factory=list)
    conditions: int = 0
    uses_llm: bool = False
    current: str = ""  # the field name of the comparison being compiled, for messages

    def compile(self, tree: Tree) -> CompiledQuery:
        having = self._trace_expr(tree)
        if len(self.spanset_sql) == 1:
            return CompiledQuery(self.spanset_sql[0], None, self.params, self.uses_llm, 1)
        where = " OR ".join(f"({sql})" for sql in self.spanset_sql)
        return CompiledQuery(where, having, self.params, self.uses_llm, len(self.spanset_sql))

    # -- trace level: combine span sets; each leaf is "this trace has a span matching it"
    def _trace_expr(self, node: Tree) -> str:
        if node.data in ("trace_or", "trace_and"):
            joiner = " OR " if node.data == "trace_or" else " AND "
            return "(" + joiner.join(self._trace_expr(child) for child in node.children) + ")"
        if node.data == "spanset":
            if len(self.spanset_sql) >= MAX_SPANSETS:
                raise TraceQLError(f"more than {MAX_SPANSETS} span sets", _start(node), self.query)
            sql = self._span_expr(node.children[0]) if node.children else "1"
            self.spanset_sql.append(sql)
            return f"countIf({sql}) > 0"
        raise TraceQLError(f"unexpected {node.data}", _start(node), self.query)  # pragma: no cover

    # -- span level
    def _span_expr(self, node: Tree) -> str:
        if node.data in ("span_or", "span_and"):
            joiner = " OR " if node.data == "span_or" else " AND "
            return "(" + joiner.join(self._span_expr(child) for child in node.children) + ")"
        if node.data == "comparison":
            return self._comparison(*node.children)
        raise TraceQLError(f"unexpected {node.data}", _start(node), self.query)  # pragma: no cover

    def _comparison(self, name: Token, op: Token, value: Token) -> str:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise TraceQLError(f"more than {MAX_CONDITIONS} conditions", name.start_pos or 0, self.query)
        self.current = str(name)
        if value.type == "FIELD" and value == "nil":
            return self._existence(name, op)
        targets = self._resolve(name)
        parts = [self._compare(target, op, value) for target in targets]
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def _resolve(self, name: Token) -> list[Field]:
        """A field name -> the Field(s) it reads; unscoped ``.x`` may be a span or resource attribute."""
        text = str(name)
        if text in _SPAN_INTRINSICS:
            return [_SPAN_INTRINSICS[text]]
        if text in _LLM_INTRINSICS:
            self.uses_llm = True
            return [_LLM_INTRINSICS[text]]
        scope, _, key = text.partition(".")
        if not key or scope not in ("span", "resource", ""):
            raise TraceQLError(
                f"unknown field {text!r}: use an intrinsic ({', '.join(INTRINSICS)}) "
                "or an attribute as span.<key>, resource.<key> or .<key>",
                name.start_pos or 0, self.query)
        fields: list[Field] = []
        if scope in ("span", "") and key in _LLM_FIELDS:
            self.uses_llm = True
            fields.append(_LLM_FIELDS[key])
        elif scope in ("span", ""):
            fields.append(self._map_field("SpanAttributes", key))
        if scope in ("resource", ""):
            if key == "service.name":  # a typed column: no Map to decompress
                fields.append(Field(f"{SPAN}.ServiceName", "string"))
            else:
                fields.append(self._map_field("ResourceAttributes", key))
        return fields

    def _map_field(self, column: str, key: str) -> Field:
        p = self._param(key, "String")
        return Field(f"{SPAN}.{column}[{p}]", "attribute", present=f"mapContains({SPAN}.{column}, {p})")

    def _existence(self, name: Token, op: Token) -> str:
        if op not in _EQUALITY_OPS:
            raise TraceQLError("nil compares with = or != only", op.start_pos or 0, self.query)
        checks = [target.present or "1" for target in self._resolve(name)]
        exists = "(" + " OR ".join(checks) + ")"
        return exists if op == "!=" else f"NOT {exists}"

    def _compare(self, target: Field, op: Token, value: Token) -> str:
        sql = self._typed_compare(target, op, value)
        return f"({target.present} AND {sql})" if target.present else sql

    def _typed_compare(self, target: Field, op: Token, value: Token) -> str:
        kind = target.type
        if kind in ("status", "kind"):
            return self._enum_compare(target, op, value, _STATUS if kind == "status" else _KINDS)
        if kind == "array":
            return self._array_compare(target, op, value)
        if kind == "duration":
            if value.type != "DURATION":
                raise self._value_error(value, "durations need a unit, e.g. 2s, 150ms, 1m")
            return self._ordered(target.sql, op, _duration_ns(value, self.query) / target.ns_per_unit)
        if kind == "number":
            if value.type == "DURATION" and target.ns_per_unit != 1.0:
                return self._ordered(target.sql, op, _duration_ns(value, self.query) / target.ns_per_unit)
            if value.type != "NUMBER":
                raise self._value_error(value, f"{self.current} compares with a number")
            return self._ordered(target.sql, op, _number(value, self.query))
        # strings and free attributes: the literal's type decides how to compare
        if value.type == "NUMBER":
            if kind == "string":
                raise self._value_error(value, "this field holds text: quote the value")
            return self._ordered(f"toFloat64OrNull({target.sql})", op, _number(value, self.query))
        if value.type == "STRING":
            return self._text(target.sql, op, _unquote(value))
        if value.type == "FIELD" and value in ("true", "false"):
            if op not in _EQUALITY_OPS:
                raise TraceQLError("true/false compare with = or != only", op.start_pos or 0, self.query)
            return self._text(target.sql, op, str(value))
        raise self._value_error(value, "text values go in double quotes")

    def _array_compare(self, target: Field, op: Token, value: Token) -> str:
        """A list of names matches when one of them does (`!=`, `!~`: when none does)."""
        if value.type != "STRING":
            raise self._value_error(value, f"{self.current} compares with \"quoted text\"")
        text = _unquote(value)
        if op in ("=", "!="):
            found = f"has({target.sql}, {self._param(text, 'String')})"
        elif op in ("=~", "!~"):
            _check_regex(text, op, self.query)
            found = f"arrayExists(x -> match(x, {self._param(text, 'String')}), {target.sql})"
        else:
            raise TraceQLError(f"{self.current} compares with =, !=, =~ or !~", op.start_pos or 0, self.query)
        return found if op in ("=", "=~") else f"NOT {found}"

    def _enum_compare(self, target: Field, op: Token, value: Token, allowed: dict[str, str]) -> str:
        if op not in _EQUALITY_OPS:
            raise TraceQLError(f"{self.current} compares with = or != only", op.start_pos or 0, self.query)
        word = _unquote(value) if value.type == "STRING" else str(value)
        if value.type not in ("FIELD", "STRING") or word.lower() not in allowed:
            raise self._value_error(value, f"expected one of {', '.join(allowed)}")
        return f"{target.sql} {op} {self._param(allowed[word.lower()], 'String')}"

    def _ordered(self, sql: str, op: Token, number: float) -> str:
        if op not in _ORDER_OPS:
            raise TraceQLError(f"{op} needs a text value", op.start_pos or 0, self.query)
        return f"{sql} {op} {self._param(number, 'Float64')}"

    def _text(self, sql: str, op: Token, text: str) -> str:
        if op in ("=~", "!~"):
            _check_regex(text, op, self.query)
            matched = f"match({sql}, {self._param(text, 'String')})"
            return matched if op == "=~" else f"NOT {matched}"
        if op not in _STRING_OPS:  # pragma: no cover - the grammar only yields known operators
            raise TraceQLError(f"unknown operator {op}", op.start_pos or 0, self.query)
        return f"{sql} {op} {self._param(text, 'String')}"

    def _param(self, value: Any, ch_type: str) -> str:
        name = f"q{len(self.params)}"
        self.params[name] = value
        return "{" + f"{name}:{ch_type}" + "}"

    def _value_error(self, value: Token, message: str) -> TraceQLError:
        return TraceQLError(f"bad value {str(value)!r}: {message}", value.start_pos or 0, self.query)


def _start(node: Tree) -> int:
    for token in node.scan_values(lambda v: isinstance(v, Token)):
        return token.start_pos or 0
    return 0


def _number(token: Token, query: str) -> float:
    number = float(token)
    if not math.isfinite(number):
        raise TraceQLError(f"number {str(token)!r} is out of range", token.start_pos or 0, query)
    return number


def _duration_ns(token: Token, query: str) -> float:
    text = str(token)
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h|d)", text)
    assert match, text  # the grammar guarantees the shape
    ns = float(match.group(1)) * _UNITS_NS[match.group(2)]
    if not math.isfinite(ns):
        raise TraceQLError(f"duration {text!r} is out of range", token.start_pos or 0, query)
    return ns


_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}


def _unquote(token: Token) -> str:
    body = str(token)[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), body)


_RE2_UNSUPPORTED = re.compile(r"\(\?<?[=!]|\\[1-9]")


def _check_regex(pattern: str, op: Token, query: str) -> None:
    """Reject patterns ClickHouse's RE2 would refuse, so the user gets a 400, not a 500."""
    position = op.start_pos or 0
    if _RE2_UNSUPPORTED.search(pattern):
        raise TraceQLError("regex lookarounds and back-references are not supported (RE2 syntax)",
                           position, query)
    try:
        re.compile(pattern)
    except re.error as exc:
        raise TraceQLError(f"invalid regular expression: {exc.msg}", position, query) from None
