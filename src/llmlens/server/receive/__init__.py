"""OTLP receivers (HTTP and gRPC), body decoding and the ingest pipeline."""
