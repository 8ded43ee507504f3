"""Read-only ClickHouse SQL over the store: the guard (what may run), the engine (how, within which
limits) and the ClickHouse-compatible HTTP interface on its own port (--sql-port)."""
