"""The TraceQL-like language: grammar, operators, precedence, errors and hostile input.

The SQL it produces is executed against a real store in tests/browser/test_search_api.py.
"""

from __future__ import annotations

import re

import pytest

from llmlens.server.query.traceql import MAX_QUERY_CHARS, TraceQLError, compile_query, parse

PLACEHOLDER = re.compile(r"\{(q\d+):(\w+)\}")


def sql_with_values(query: str) -> str:
    """The compiled WHERE with placeholders shown as their values, to read conditions easily."""
    compiled = compile_query(query)
    return PLACEHOLDER.sub(lambda m: repr(compiled.params[m.group(1)]), compiled.where)


def error_of(query: str) -> TraceQLError:
    with pytest.raises(TraceQLError) as info:
        compile_query(query)
    return info.value


@pytest.mark.parametrize("op", ["=", "!=", ">", ">=", "<", "<="])
def test_every_ordering_operator_on_a_numeric_attribute(op: str) -> None:
    compiled = compile_query(f"{{ span.http.status_code {op} 500 }}")
    assert compiled.where == (
        "(mapContains(s.SpanAttributes, {q0:String}) AND "
        f"toFloat64OrNull(s.SpanAttributes[{{q0:String}}]) {op} {{q1:Float64}})")
    assert compiled.params == {"q0": "http.status_code", "q1": 500.0}


@pytest.mark.parametrize("op", ["=", "!="])
def test_string_equality_on_span_and_resource_attributes(op: str) -> None:
    assert sql_with_values(f'{{ resource.deployment.environment {op} "prod" }}') == (
        "(mapContains(s.ResourceAttributes, 'deployment.environment') AND "
        f"s.ResourceAttributes['deployment.environment'] {op} 'prod')")


def test_regex_match_and_not_match_pass_the_pattern_as_a_parameter() -> None:
    assert sql_with_values('{ name =~ "chat.*" }') == "match(s.SpanName, 'chat.*')"
    assert sql_with_values('{ name !~ "^retrieve" }') == "NOT match(s.SpanName, '^retrieve')"


def test_intrinsics_name_status_duration_kind() -> None:
    assert sql_with_values('{ name = "chat" }') == "s.SpanName = 'chat'"
    assert sql_with_values("{ status = error }") == "s.StatusCode = 'Error'"
    assert sql_with_values("{ status != ok }") == "s.StatusCode != 'Ok'"
    assert sql_with_values('{ status = "unset" }') == "s.StatusCode = 'Unset'"
    assert sql_with_values("{ kind = server }") == "s.SpanKind = 'Server'"
    assert sql_with_values("{ kind != client }") == "s.SpanKind != 'Client'"


@pytest.mark.parametrize(("literal", "ns"), [
    ("2s", 2e9), ("150ms", 1.5e8), ("1m", 6e10), ("1h", 3.6e12), ("250us", 2.5e5), ("1.5s", 1.5e9), ("7ns", 7.0)])
def test_duration_units_become_nanoseconds(literal: str, ns: float) -> None:
    compiled = compile_query(f"{{ duration > {literal} }}")
    assert compiled.where == "s.Duration > {q0:Float64}"
    assert compiled.params == {"q0": ns}


def test_resource_service_name_reads_the_typed_column() -> None:
    assert sql_with_values('{ resource.service.name = "chatbot" }') == "s.ServiceName = 'chatbot'"


def test_genai_names_read_the_normalised_llm_columns_whatever_the_convention() -> None:
    compiled = compile_query('{ span.gen_ai.usage.input_tokens > 100 && span.gen_ai.request.model = "gpt-4o-mini" }')
    assert compiled.uses_llm
    assert "l.InputTokens > {q0:Float64}" in compiled.where
    assert "l.RequestModel = {q1:String}" in compiled.where
    # Spans without the fact must not match: the LEFT JOIN fills defaults ('' and 0), and tool or
    # retrieval steps have LLM rows without tokens. Tokens count on model calls only.
    assert "(l.Operation IN ('chat', " in compiled.where
    assert "l.RequestModel != '' AND l.RequestModel = {q1:String}" in compiled.where
    assert "SpanAttributes" not in compiled.where


def test_ttft_accepts_durations_and_seconds() -> None:
    assert sql_with_values("{ ttft > 500ms }") == "(l.TtftMs IS NOT NULL AND l.TtftMs > 500.0)"
    assert sql_with_values("{ span.gen_ai.response.time_to_first_chunk > 0.5 }") == (
        "(l.TtftMs IS NOT NULL AND l.TtftMs / 1000 > 0.5)")


def test_llm_intrinsics() -> None:
    assert sql_with_values("{ cost > 0.01 }").endswith(" AND l.CostUsd > 0.01)")
    assert sql_with_values('{ department = "cx" }') == "(l.Department != '' AND l.Department = 'cx')"
    assert sql_with_values('{ errorType = "RateLimitError" }') == (
        "(l.ErrorType != '' AND l.ErrorType = 'RateLimitError')")


def test_queries_without_llm_fields_do_not_join_llm_calls() -> None:
    assert not compile_query('{ duration > 1s && name = "x" }').uses_llm


def test_unscoped_attribute_looks_in_span_and_resource() -> None:
    assert sql_with_values('{ .region = "eu" }') == (
        "((mapContains(s.SpanAttributes, 'region') AND s.SpanAttributes['region'] = 'eu') OR "
        "(mapContains(s.ResourceAttributes, 'region') AND s.ResourceAttributes['region'] = 'eu'))")


def test_nil_tests_presence() -> None:
    assert sql_with_values("{ span.user.id != nil }") == "(mapContains(s.SpanAttributes, 'user.id'))"
    assert sql_with_values("{ span.user.id = nil }") == "NOT (mapContains(s.SpanAttributes, 'user.id'))"


def test_booleans_compare_as_their_text() -> None:
    assert sql_with_values("{ span.cache.hit = true }") == (
        "(mapContains(s.SpanAttributes, 'cache.hit') AND s.SpanAttributes['cache.hit'] = 'true')")


def test_and_binds_tighter_than_or_inside_a_spanset() -> None:
    assert sql_with_values('{ name = "a" || name = "b" && status = error }') == (
        "(s.SpanName = 'a' OR (s.SpanName = 'b' AND s.StatusCode = 'Error'))")
    assert sql_with_values('{ name = "a" && name = "b" || status = error }') == (
        "((s.SpanName = 'a' AND s.SpanName = 'b') OR s.StatusCode = 'Error')")


def test_parentheses_override_precedence() -> None:
    assert sql_with_values('{ (name = "a" || name = "b") && status = error }') == (
        "((s.SpanName = 'a' OR s.SpanName = 'b') AND s.StatusCode = 'Error')")


def test_spansets_combine_at_trace_level() -> None:
    compiled = compile_query('{ name = "a" } && { status = error } || { duration > 1s }')
    assert compiled.spansets == 3
    assert compiled.having == (
        "((countIf(s.SpanName = {q0:String}) > 0 AND countIf(s.StatusCode = {q1:String}) > 0) "
        "OR countIf(s.Duration > {q2:Float64}) > 0)")
    # The span filter keeps every span that any span set could need.
    assert compiled.where == (
        "(s.SpanName = {q0:String}) OR (s.StatusCode = {q1:String}) OR (s.Duration > {q2:Float64})")


def test_trace_level_parentheses() -> None:
    compiled = compile_query('{ name = "a" } && ({ status = error } || { duration > 1s })')
    assert compiled.having == (
        "(countIf(s.SpanName = {q0:String}) > 0 AND "
        "(countIf(s.StatusCode = {q1:String}) > 0 OR countIf(s.Duration > {q2:Float64}) > 0))")


def test_a_single_spanset_needs_no_having_and_empty_matches_all() -> None:
    assert compile_query("{ }").where == "1"
    assert compile_query("{ }").having is None


@pytest.mark.parametrize(("query", "position", "fragment"), [
    ('{ name = "a" ', 13, "ends too early"),
    ('{ name "a" }', 7, "unexpected"),
    ("{ duration > }", 13, "unexpected '}'"),
    ('name = "a"', 0, "expected '(' or '{'"),
    ('{ name = "a" }}', 14, "unexpected '}'"),
    ("{ name = 'a' }", 9, "double quotes"),
    ('{ name == "a" }', 8, "unexpected"),
    ('{ name = "a" } &&', 17, "ends too early"),
    ('{ name = "unterminated }', 9, "unexpected character"),
])
def test_syntax_errors_carry_the_position(query: str, position: int, fragment: str) -> None:
    error = error_of(query)
    assert error.position == position
    assert fragment in str(error)
    assert f"column {position + 1}" in str(error)


def test_error_line_and_column_on_multi_line_queries() -> None:
    error = error_of('{ name = "a"\n  && duration > }')
    assert (error.line, error.column) == (2, 17)


@pytest.mark.parametrize(("query", "fragment"), [
    ("{ duration > 2 }", "need a unit"),
    ('{ duration > "2s" }', "need a unit"),
    ("{ status = broken }", "expected one of ok, error, unset"),
    ("{ status > error }", "= or != only"),
    ("{ kind = sideways }", "expected one of"),
    ("{ foo = 1 }", "unknown field 'foo'"),
    ("{ span.x = bare }", "double quotes"),
    ("{ name = 5 }", "quote the value"),
    ("{ span.x =~ 5 }", "needs a text value"),
    ('{ span.gen_ai.usage.input_tokens > "many" }', "compares with a number"),
    ("{ span.x > nil }", "nil compares with = or != only"),
    ('{ name =~ "(?=x)" }', "lookarounds"),
    ('{ name =~ "a(" }', "invalid regular expression"),
    ("", "empty query"),
])
def test_semantic_errors_are_clear(query: str, fragment: str) -> None:
    assert fragment in str(error_of(query))


def test_semantic_error_points_at_the_value() -> None:
    assert error_of("{ duration > 2 }").position == 13


def quoted(text: str) -> str:
    """``text`` as a string literal of the query language."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


@pytest.mark.parametrize("hostile", [
    "x' OR 1=1 --",
    "'; DROP TABLE otel_traces; --",
    'a"b',
    "back\\slash",
    "{q0:String}",
    "}) OR ({",
    "line\nbreak\ttab",
])
def test_hostile_text_only_ever_becomes_a_parameter(hostile: str) -> None:
    compiled = compile_query(f"{{ span.note = {quoted(hostile)} || name =~ {quoted(re.escape(hostile))} }}")
    assert compiled.params["q1"] == hostile
    assert re.compile(compiled.params["q2"]).fullmatch(hostile)
    stripped = PLACEHOLDER.sub("", compiled.where)
    assert "DROP" not in stripped and "'" not in stripped
    assert set(PLACEHOLDER.findall(compiled.where)) == {("q0", "String"), ("q1", "String"), ("q2", "String")}


def test_hostile_attribute_keys_cannot_be_written() -> None:
    # Keys are lexed as identifiers; anything else is a syntax error, never SQL.
    assert error_of("{ span.a'b = 1 }").position == 8
    assert error_of("{ span.a;DROP = 1 }").position == 8


def test_huge_numbers() -> None:
    assert compile_query("{ span.n > 99999999999999999999999999 }").params["q1"] == 1e26
    assert "out of range" in str(error_of("{ span.n > 1e999 }"))
    assert "out of range" in str(error_of("{ span.n < -1e999 }"))
    assert compile_query("{ duration > 99999999999999999999h }").params["q0"] == pytest.approx(3.6e32)
    assert "out of range" in str(error_of("{ duration > " + "9" * 400 + "h }"))


def test_long_and_deep_queries_are_refused_cleanly() -> None:
    assert "longer than" in str(error_of("{ " + "name = \"a\" && " * 400 + "name = \"a\" }"))
    assert len("{" + "(" * 1900 + 'name="a"' + ")" * 1900 + "}") < MAX_QUERY_CHARS
    # Redundant parentheses cost nothing: the parser is LALR and the tree stays flat.
    assert sql_with_values("{" + "(" * 1900 + 'name="a"' + ")" * 1900 + "}") == "s.SpanName = 'a'"
    nested = "{ " + "(name = \"a\" && " * 60 + "name = \"a\"" + ")" * 60 + " }"
    assert compile_query(nested).where.count("s.SpanName") == 61
    many = " || ".join(['name = "a"'] * 70)
    assert "more than 64 conditions" in str(error_of("{ " + many + " }"))


def test_parse_exposes_a_tree() -> None:
    assert parse("{ duration > 2s }").data == "spanset"
