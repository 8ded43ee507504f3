"""The llmlens server: receive OTLP, normalise, store in ClickHouse, serve the API and UI."""

from llmlens.server.no_pandas import keep_pandas_unloaded

# Before any server module converts a list with pyarrow: in the server process and in each
# ingest worker (both import this package first).
keep_pandas_unloaded()
