"""The llmlens server: receive OTLP, normalise, store in ClickHouse, serve the API and UI."""
