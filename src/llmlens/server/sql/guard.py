"""Which SQL statements the read-only SQL interfaces run, decided on ClickHouse's own parse tree.

The store's engine parses the statement (`EXPLAIN AST`, after `formatQuery` has refused several
statements in one) and this module walks the tree it prints. The connection's `readonly=1`
already refuses writes, DDL, setting changes and the table functions that reach outside the
store (`file()`, `url()`, `s3()`, `remote()`, chDB's `Python()`); the walk refuses what
readonly lets through:

- statements other than SELECT/WITH, EXPLAIN, DESCRIBE, EXISTS and SHOW TABLES/COLUMNS/CREATE
  (`KILL QUERY` runs under readonly; `SHOW USERS`, `SHOW GRANTS`, `SHOW PROCESSLIST` tell who
  else uses the server);
- the scalar `file()` function, which reads a file under readonly, and functions that read
  server configuration, dictionaries, Join tables or the process's memory;
- `system` and `information_schema` tables beyond the catalogue (databases, tables, columns,
  settings, functions, formats, parts...): the rest hold users, grants, named collections
  (credentials), other sessions' queries and server internals;
- table functions beyond generators (`numbers`, `zeros`, `values`, `generateRandom`...):
  `merge()` would reach the system tables by pattern;
- `INTO OUTFILE`, which writes a file on the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmlens.server.errors import SqlRefused

# The first word of EXPLAIN AST's root line, for each statement kind that only reads.
_READ_STATEMENTS = {
    "SelectWithUnionQuery", "SelectIntersectExceptQuery", "Explain", "DescribeQuery",
    "ExistsTableQuery", "ShowTables", "ShowColumns", "ShowCreateTableQuery",
}
_SELECTS = {"SelectWithUnionQuery", "SelectIntersectExceptQuery"}
_CATALOGUE_DATABASES = {"system", "information_schema"}
_CATALOGUE_TABLES = {
    "one", "numbers", "numbers_mt", "zeros", "zeros_mt", "databases", "tables", "columns", "functions",
    "table_functions", "data_type_families", "formats", "settings", "time_zones", "parts", "parts_columns",
    "build_options", "table_engines", "aggregate_function_combinators", "keywords",
    # information_schema's views (over system.databases, tables and columns)
    "schemata", "views", "key_column_usage", "referential_constraints", "statistics",
}
_TABLE_FUNCTIONS = {
    "numbers", "numbers_mt", "zeros", "zeros_mt", "values", "generaterandom", "generate_series",
    "generateseries", "view",  # view(SELECT ...): its inner query is walked like any other
}
# Scalar functions refused (compared lower-case). `file` reads a file even under readonly.
_FUNCTIONS = {
    "file", "getserversetting", "getmacro", "getclienthttpheader", "catboostevaluate", "joinget",
    "joingetornull", "addresstoline", "addresstolinewithinlines", "addresstosymbol", "demangle",
    "trap", "__getscalar",
}
_FUNCTION_PREFIXES = ("dictget", "dicthas", "dictisin")  # dictionaries may be backed by other servers
# `x IN db.table`: the right side names a table, printed as a plain Identifier.
_IN_FUNCTIONS = {"in", "notin", "globalin", "globalnotin", "nullin", "notnullin", "globalnullin", "globalnotnullin"}
_KEYWORDS = {"SelectWithUnionQuery": "SELECT", "SelectIntersectExceptQuery": "SELECT", "Explain": "EXPLAIN",
             "DescribeQuery": "DESCRIBE", "ExistsTableQuery": "EXISTS"}


@dataclass
class Node:
    """One line of EXPLAIN AST: `kind` is its first word, `name` its second (a table or function)."""

    kind: str
    name: str
    children: list[Node] = field(default_factory=list)


@dataclass(frozen=True)
class Statement:
    kind: str  # the root node's kind, e.g. SelectWithUnionQuery
    output_format: str | None  # its FORMAT clause, if any


def parse_ast(text: str) -> Node:
    """EXPLAIN AST's indented lines (one space a level) -> a tree."""
    root: Node | None = None
    stack: list[tuple[int, Node]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip(" "))
        words = line.split()
        node = Node(words[0], words[1] if len(words) > 1 and not words[1].startswith("(") else "")
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            stack[-1][1].children.append(node)
        elif root is None:
            root = node
        else:
            raise SqlRefused("one statement at a time, please")
        stack.append((depth, node))
    if root is None:
        raise SqlRefused("the query is empty")
    return root


def check_read_only(ast: Node, first_keyword: str = "") -> Statement:
    """Refuse (SqlRefused) anything but a read of the store; `first_keyword` names the statement in messages."""
    if ast.kind not in _READ_STATEMENTS:
        shown = first_keyword or _KEYWORDS.get(ast.kind, ast.kind)
        raise SqlRefused(f"{shown} statements are refused: this interface is read-only "
                         "(SELECT, WITH, EXPLAIN, DESCRIBE, EXISTS, SHOW TABLES/COLUMNS/CREATE TABLE)")
    if ast.kind == "Explain":
        inner = [c for c in ast.children if c.kind not in ("Set", "ExpressionList")]
        if not inner or inner[0].kind not in _SELECTS:
            raise SqlRefused("EXPLAIN is accepted for SELECT queries only")
    _walk(ast, None)
    output_format = None
    if ast.kind in _SELECTS | {"DescribeQuery", "ShowTables", "ShowColumns", "ShowCreateTableQuery"}:
        formats = [c.name for c in ast.children if c.kind == "Identifier"]
        output_format = formats[-1] if formats else None
    return Statement(ast.kind, output_format)


def _walk(node: Node, parent: Node | None) -> None:
    if node.kind == "TableIdentifier":
        _check_table(node.name)
    elif node.kind == "Function":
        name = node.name.lower()
        if parent is not None and parent.kind == "TableExpression":
            if name not in _TABLE_FUNCTIONS:
                raise SqlRefused(f"the table function {node.name}() is refused: SQL here reads the store only "
                                 "(table functions allowed: numbers, zeros, values, generateRandom, view)")
        elif name in _FUNCTIONS or name.startswith(_FUNCTION_PREFIXES):
            raise SqlRefused(f"the function {node.name}() is refused: it reads files, configuration or "
                             "dictionaries outside the store")
        if name in _IN_FUNCTIONS and node.children and len(node.children[0].children) >= 2:
            right = node.children[0].children[1]
            if right.kind == "Identifier":
                _check_table(right.name)
    elif node.kind == "Literal" and parent is not None and parent.kind == "SelectWithUnionQuery":
        raise SqlRefused("INTO OUTFILE is refused: results come back in the answer, never into a file on the server")
    for child in node.children:
        _walk(child, node)


def _check_table(qualified: str) -> None:
    database, dot, table = qualified.replace("`", "").partition(".")
    if dot and database.lower() in _CATALOGUE_DATABASES and table.lower() not in _CATALOGUE_TABLES:
        raise SqlRefused(f"{database}.{table} is refused: of the {database} tables, only the catalogue is readable "
                         f"({', '.join(sorted(_CATALOGUE_TABLES))})")
