"""Metrics for Prometheus, derived from every span the server stores: GenAI and llm_* families, RED
span metrics and the service graph (Tempo's names), the server's own health, and the OTLP metrics
apps send, re-exposed. derive.py runs where batches are built; aggregator.py ties the rest together."""
